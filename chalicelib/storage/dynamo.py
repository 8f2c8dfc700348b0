"""Registry metadata in the table, one module per kind of record: uploads
(storage/uploads.py), blobs, links and reference counts (storage/blobs.py), manifests, tags,
referrers and the catalog (storage/manifests.py). Every state change that could race is a
conditional write or a transaction."""

from __future__ import annotations

from chalicelib.storage.manifests import ManifestRecords
from chalicelib.storage.uploads import UploadRecords


class MetadataStore(UploadRecords, ManifestRecords):
    """What the registry's requests read and write."""
