"""Manifests by tag or digest: push, fetch (with content negotiation), delete."""

from chalice import Response

from chalicelib.api.request import RegistryRequest
from chalicelib.api.responses import empty, text
from chalicelib.errors import Oci, RegistryError
from chalicelib.manifests.negotiation import acceptable
from chalicelib.registry import Registry
from chalicelib.storage.records import ManifestRecord


def _negotiated(req: RegistryRequest, reg: Registry) -> ManifestRecord:
    return negotiated(req, reg.manifests.find(req.params["name"], req.params["reference"]))


def negotiated(req: RegistryRequest, record: ManifestRecord) -> ManifestRecord:
    """The record, if the request's Accept allows its media type."""
    if not acceptable(record.media_type, req.header_values("accept")):
        raise RegistryError(
            Oci.MANIFEST_UNKNOWN,
            f"the manifest is {record.media_type}, which the Accept header does not include",
            detail={"mediaType": record.media_type},
        )
    return record


def manifest_headers(record: ManifestRecord) -> dict[str, str]:
    return {"Content-Type": record.media_type, "Docker-Content-Digest": record.digest,
            "Content-Length": str(record.size)}


def get(req: RegistryRequest, reg: Registry) -> Response:
    record = _negotiated(req, reg)
    # Manifests were checked to be UTF-8 JSON on push, so the text round-trips byte for byte.
    body = reg.manifests.body(record).decode("utf-8")
    return text(body, 200, manifest_headers(record))


def head(req: RegistryRequest, reg: Registry) -> Response:
    return text("", 200, manifest_headers(_negotiated(req, reg)))


def put(req: RegistryRequest, reg: Registry) -> Response:
    name = req.params["name"]
    record, manifest = reg.manifests.put(name, req.params["reference"], req.body, req.header("content-type"))
    headers = {"Location": f"/v2/{name}/manifests/{record.digest}", "Docker-Content-Digest": record.digest}
    if manifest.subject is not None:
        headers["OCI-Subject"] = str(manifest.subject.digest)
    return empty(201, headers)


def delete(req: RegistryRequest, reg: Registry) -> Response:
    if not reg.settings.lifecycle.delete_manifests:
        raise RegistryError(Oci.UNSUPPORTED, "manifest deletion is disabled on this registry (BERTH_DELETE_MANIFESTS)")
    reg.manifests.delete(req.params["name"], req.params["reference"])
    return empty(202)
