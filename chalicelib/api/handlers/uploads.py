"""Blob uploads: start (or mount, or push whole), chunk, finish, status, cancel."""

from chalice import Response

from chalicelib.api.request import MAX_REQUEST_BODY, RegistryRequest
from chalicelib.api.responses import empty, json_body
from chalicelib.digest.digests import Digest
from chalicelib.errors import Oci, RegistryError
from chalicelib.naming import check_name
from chalicelib.numbers import whole_number
from chalicelib.registry import Registry
from chalicelib.storage.records import BlobRecord
from chalicelib.uploads.direct import plan
from chalicelib.uploads.parts import MAX_PARTS, MAX_URLS
from chalicelib.uploads.service import upload_location
from chalicelib.uploads.state import UploadState, parse_content_range, range_header


def _progress(state: UploadState, status: int) -> Response:
    return empty(status, {
        "Location": upload_location(state.repo, state.uuid),
        "Range": range_header(state.offset),
        "Docker-Upload-UUID": state.uuid,
    })


def _created(repo: str, blob: BlobRecord) -> Response:
    return empty(201, {"Location": f"/v2/{repo}/blobs/{blob.digest}", "Docker-Content-Digest": blob.digest})


def _digest_arg(req: RegistryRequest) -> Digest:
    digest = req.arg("digest")
    if digest is None:
        raise RegistryError(Oci.DIGEST_INVALID, "the digest query parameter is required to finish an upload")
    return Digest.parse(digest)


def start(req: RegistryRequest, reg: Registry) -> Response:
    name = req.params["name"]
    mount = req.arg("mount")
    if mount is not None:
        digest, source = Digest.parse(mount), req.arg("from")
        # Only from where the caller may read, and never by searching every repository when
        # there are callers who may not: otherwise a mount would tell who holds a blob.
        if source is not None and req.principal.may_read(check_name(source)) or (
                source is None and reg.auth.mode == "none"):
            blob = reg.uploads.mount(name, digest, source)
            if blob is not None:
                return _created(name, blob)
    elif req.arg("berth-direct") is not None:
        claimed = req.arg("digest")
        started = reg.direct.start(name, req.arg("berth-direct") or "", Digest.parse(claimed) if claimed else None)
        if isinstance(started, BlobRecord):
            return _created(name, started)
        return _direct(started, 202)
    elif req.arg("digest") is not None:
        blob = reg.uploads.finish(UploadState.new(name, None), _digest_arg(req), req.body, persisted=False)
        return _created(name, blob)
    elif req.body:
        raise RegistryError(Oci.DIGEST_INVALID, "a POST with a body needs ?digest= (monolithic upload)")
    state = reg.uploads.start(name)
    response = _progress(state, 202)
    response.headers["OCI-Chunk-Min-Length"] = str(MAX_REQUEST_BODY)
    response.headers["OCI-Chunk-Max-Length"] = str(MAX_REQUEST_BODY)
    return response


def _direct(state: UploadState, status: int) -> Response:
    """A direct upload's progress: where it is, and how its parts are cut."""
    parts = plan(state)
    response = _progress(state, status)
    response.headers.update({"Berth-Part-Size": str(parts.part_size), "Berth-Part-Count": str(parts.count)})
    return response


def parts(req: RegistryRequest, reg: Registry) -> Response:
    state = reg.uploads.load(req.params["name"], req.params["uuid"])
    first = whole_number(req.arg("first") or "1", MAX_PARTS + 1)
    count = whole_number(req.arg("count") or str(MAX_URLS), MAX_URLS)
    if first is None or count is None:
        raise RegistryError(Oci.BLOB_UPLOAD_INVALID, "first and count must be whole numbers")
    return json_body(reg.direct.listing(state, first, count))


def _chunk_start(req: RegistryRequest) -> int | None:
    """Where the client says this chunk starts, after checking it against the body length."""
    header = req.header("content-range")
    if header is None:
        return None
    parsed = parse_content_range(header)
    if parsed is None:
        raise RegistryError(Oci.RANGE_INVALID, "Content-Range must be <start>-<end>", detail={"range": header[:64]})
    start, end = parsed
    if end - start + 1 != len(req.body):
        raise RegistryError(Oci.SIZE_INVALID, "Content-Range does not match the body length",
                            detail={"range": header[:64], "length": len(req.body)})
    return start


def patch(req: RegistryRequest, reg: Registry) -> Response:
    start = _chunk_start(req)
    if not start:
        first = reg.uploads.append_first(req.params["name"], req.params["uuid"], req.body)
        if first is not None:
            return _progress(first, 202)
    state = reg.uploads.load(req.params["name"], req.params["uuid"])
    if state.direct is not None:
        raise RegistryError(Oci.BLOB_UPLOAD_INVALID, "a direct upload's bytes go to S3 (see its /parts)")
    state = reg.uploads.append(state, req.body, start)
    return _progress(state, 202)


def finish(req: RegistryRequest, reg: Registry) -> Response:
    digest = _digest_arg(req)
    state = reg.uploads.load(req.params["name"], req.params["uuid"])
    if state.direct is not None:
        finished = reg.direct.finish(state, digest)
        if isinstance(finished, BlobRecord):
            return _created(state.repo, finished)
        return empty(202, {"Location": f"/v2/{state.repo}/blobs/{digest}", "Docker-Content-Digest": str(digest),
                           "Berth-Verification": "pending"})
    start = _chunk_start(req) if req.body else None
    return _created(state.repo, reg.uploads.finish(state, digest, req.body, start=start))


def status(req: RegistryRequest, reg: Registry) -> Response:
    state = reg.uploads.load(req.params["name"], req.params["uuid"])
    if state.direct is None:
        return _progress(state, 204)
    reg.direct.check(state)
    response = _direct(state, 204)
    if state.direct.phase == "verifying":
        response.headers["Berth-Verification"] = "pending"
    return response


def cancel(req: RegistryRequest, reg: Registry) -> Response:
    reg.uploads.cancel(reg.uploads.load(req.params["name"], req.params["uuid"]))
    return empty(204)
