"""Blob reads and unlinks. Reads never carry bytes: GET redirects to a presigned S3 URL."""

from chalice import Response

from chalicelib.api.request import RegistryRequest
from chalicelib.api.responses import empty
from chalicelib.digest.digests import Digest
from chalicelib.errors import Oci, RegistryError
from chalicelib.registry import Registry
from chalicelib.storage.records import BlobRecord


def _linked(req: RegistryRequest, reg: Registry) -> BlobRecord:
    digest = str(Digest.parse(req.params["digest"]))
    blob = reg.meta.get_link(req.params["name"], digest)
    if blob is None:
        raise RegistryError(Oci.BLOB_UNKNOWN, detail={"digest": digest})
    return blob


def get(req: RegistryRequest, reg: Registry) -> Response:
    blob = _linked(req, reg)
    return empty(307, {"Location": reg.blobs.presigned_get(blob.key), "Docker-Content-Digest": blob.digest})


def head(req: RegistryRequest, reg: Registry) -> Response:
    blob = _linked(req, reg)
    return empty(200, {"Content-Length": str(blob.size), "Docker-Content-Digest": blob.digest})


def delete(req: RegistryRequest, reg: Registry) -> Response:
    if not reg.settings.lifecycle.delete_blobs:
        raise RegistryError(Oci.UNSUPPORTED, "blob deletion is disabled on this registry (BERTH_DELETE_BLOBS)")
    digest = str(Digest.parse(req.params["digest"]))
    if not reg.meta.unlink(req.params["name"], digest):
        raise RegistryError(Oci.BLOB_UNKNOWN, detail={"digest": digest})
    return empty(202)
