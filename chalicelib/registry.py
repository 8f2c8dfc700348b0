"""The registry's services, wired to storage once per Lambda container."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.manifests.service import Manifests
from chalicelib.settings import Settings
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.dynamo import MetadataStore
from chalicelib.storage.s3 import BlobStore
from chalicelib.uploads.service import Uploads


@dataclass
class Registry:
    settings: Settings
    blobs: BlobStore
    meta: MetadataStore
    uploads: Uploads
    manifests: Manifests

    @classmethod
    def build(cls, settings: Settings, clients: AwsClients | None = None) -> Registry:
        clients = clients or AwsClients(settings.region)
        blobs = BlobStore(clients, settings.bucket, settings.presign_seconds)
        meta = MetadataStore(clients, settings.table)
        return cls(settings, blobs, meta, Uploads(blobs, meta), Manifests(blobs, meta))
