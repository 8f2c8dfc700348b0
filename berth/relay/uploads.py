"""Blob uploads: the part of the API the relay answers itself. Stock clients send a whole layer
in one request, which no Lambda takes above 4,456,448 bytes; the relay takes it instead, in
any of the ways clients send it (POST, PATCH with or without `Content-Range`, by length or
chunked, PUT with or without a last chunk; or a monolithic POST or PUT), spools it to a file
(berth.relay.sessions) and checks its digest. Then it delivers the blob upstream with the
client's credentials: into the upstream upload opened at the start when one request carries
it, otherwise with berth.client's BlobPusher, which sends a large blob straight to S3 (Berth's
direct upload, docs/direct-upload.md), part by part from the spool file, and waits for the
registry to verify it. Only then does the client hear `201 Created`.

Starting an upload asks the upstream too (the same POST, with the client's credentials): a
client that may not push is refused before it sends a byte, with the upstream's own answer (a
401 challenge makes it log in), and a mount (`?mount=&from=`) happens upstream, as it would
without the relay."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from urllib.parse import quote, urlencode

import requests

from berth.client import (
    AuthError,
    BlobPusher,
    ClientError,
    Descriptor,
    FileRange,
    RegistryError,
    Repository,
    ResumeStore,
)
from berth.client.blobs import DEFAULT_CHUNK_MAX
from berth.client.content import Body
from berth.relay.forward import Forwarder
from berth.relay.messages import API_VERSION, Reply, Request, oci_error
from berth.relay.sessions import Upload, Uploads
from berth.relay.upstream import Upstream

log = logging.getLogger("berth.relay")

UPLOAD_PATH = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[^/]*)\Z")
DIGEST = re.compile(r"^(?:sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})\Z")
CONTENT_RANGE = re.compile(r"^(?:bytes[= ])?([0-9]+)-([0-9]+)\Z")
# What the relay answers on its own uploads; any other method goes upstream, which answers it
# as the deployed API does.
UPLOAD_METHODS = frozenset({"PATCH", "PUT", "GET", "HEAD", "DELETE"})
BLOB_TYPE = "application/octet-stream"  # what a blob is to the upload API, whatever the manifest calls it

Answer = Reply | requests.Response  # the relay's own, or the upstream's to pass on


class SizeMismatch(Exception):
    """A body holds more or fewer bytes than its `Content-Range` says."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count  # bytes read: all of them, or the first too many


class BlobUploads:
    def __init__(self, upstream: Upstream, forwarder: Forwarder, uploads: Uploads, pool: Executor) -> None:
        self.upstream, self.forwarder, self.uploads, self.pool = upstream, forwarder, uploads, pool
        # Direct uploads the upstream refused to finish (most likely: the client's token expired
        # while the parts went to S3). The client sends the blob again with a fresh token, and
        # only what is missing goes upstream: the finish, usually.
        self.unfinished = ResumeStore(uploads.directory / "unfinished")

    def handles(self, request: Request) -> bool:
        """Opening an upload, or a request to one of the relay's uploads. Direct uploads
        (`?berth-direct=`) come from clients that need no relay: they pass through, and so do
        requests to the upstream uploads they open."""
        match = UPLOAD_PATH.match(request.path)
        if match is None or "berth-direct" in request.query:
            return False
        if not match["id"]:
            return request.method == "POST"
        return request.method in UPLOAD_METHODS and match["id"] in self.uploads

    def answer(self, request: Request) -> Answer:
        match = UPLOAD_PATH.match(request.path)
        assert match is not None
        name, upload_id = match["name"], match["id"]
        if not upload_id:
            return self._start(request, name)
        with self.uploads.use(name, upload_id) as upload:
            if upload is None:
                return oci_error(404, "BLOB_UPLOAD_UNKNOWN", f"no upload {upload_id} in {name}")
            if request.method == "PATCH":
                return self._append(request, upload) or _progress(202, upload)
            if request.method == "PUT":
                return self._finish(request, upload)
            if request.method in ("GET", "HEAD"):
                return _progress(204, upload)
            self._discard(request, upload)  # DELETE
            return Reply(204, [API_VERSION])

    def _start(self, request: Request, name: str) -> Answer:
        digest = request.query.get("digest")
        if digest is not None and not DIGEST.match(digest):
            return oci_error(400, "DIGEST_INVALID", f"{digest!r} is not a supported digest")
        mount = [(k, request.query[k]) for k in ("mount", "from") if k in request.query]
        target = f"/v2/{quote(name)}/blobs/uploads/" + (f"?{urlencode(mount)}" if mount else "")
        response = self.forwarder.send("POST", target, request.headers)
        if response.status_code != 202:
            return response  # refused, or mounted (201): the upstream's answer is the client's
        response.close()
        chunk_max = response.headers.get("OCI-Chunk-Max-Length", "")
        upload = self.uploads.open(name, response.headers.get("Location"),
                                   int(chunk_max) if chunk_max.isascii() and chunk_max.isdigit() else DEFAULT_CHUNK_MAX)
        if digest is None:
            return _progress(202, upload)
        with self.uploads.use(name, upload.id) as held:  # a monolithic upload: the body is the blob
            assert held is upload
            return self._finish(request, upload)

    def _append(self, request: Request, upload: Upload) -> Reply | None:
        """Add the request's body to the upload, checking its `Content-Range` if it has one;
        None when it went in, otherwise the refusal."""
        span = request.headers.get("Content-Range")
        body: Iterable[bytes] = request.body
        if span is not None:
            match = CONTENT_RANGE.match(span.strip())
            if match is None or int(match[1]) != upload.size or int(match[2]) < int(match[1]):
                return oci_error(416, "BLOB_UPLOAD_INVALID",
                                 f"Content-Range {span!r} does not continue the upload at byte {upload.size}",
                                 _upload_headers(upload))
            expected = int(match[2]) - int(match[1]) + 1
            if request.body.length is not None and request.body.length != expected:
                return _size_invalid(span, request.body.length)
            body = _exactly(request.body, expected)
        try:
            upload.append(body)
        except SizeMismatch as error:
            return _size_invalid(span or "", error.count)
        return None

    def _finish(self, request: Request, upload: Upload) -> Reply:
        digest = request.query.get("digest")
        if not digest or not DIGEST.match(digest):
            return oci_error(400, "DIGEST_INVALID", "finishing an upload needs ?digest=sha256:<64 hex>")
        if request.body.present:
            refused = self._append(request, upload)
            if refused is not None:
                return refused
        actual = upload.digest(digest.partition(":")[0])
        if actual != digest:
            self._discard(request, upload)
            return oci_error(400, "DIGEST_INVALID", f"the bytes sent are {actual}, not {digest}")
        try:
            return self._deliver(request, upload, digest)
        finally:
            self.uploads.remove(upload)

    def _deliver(self, request: Request, upload: Upload, digest: str) -> Reply:
        client = self.upstream.client(request.authorization)
        client.chunk_max = upload.chunk_max
        repo = client.repository(upload.repository, push=True)
        try:
            how = self._push(repo, upload, digest)
        except ClientError as error:
            log.warning("%s@%s (%d bytes) did not reach the upstream: %s",
                        upload.repository, digest, upload.size, error)
            return _failure(error)
        finally:
            client.session.http.close()
        log.info("%s@%s (%d bytes): %s", upload.repository, digest, upload.size, how)
        return Reply(201, [("Location", f"/v2/{upload.repository}/blobs/{digest}"),
                           ("Docker-Content-Digest", digest), API_VERSION])

    def _push(self, repo: Repository, upload: Upload, digest: str) -> str:
        content, opened = FileRange(upload.path, 0, upload.size), upload.upstream_upload
        if opened is not None:
            if upload.size <= upload.chunk_max:
                try:
                    repo.finish_upload(opened, digest, lambda: Body(content, 0, upload.size), upload.size)
                    return "pushed in one request"
                except RegistryError as error:
                    if error.status != 404:
                        raise
                    # That upload is gone (the upstream purged it while the client dawdled): afresh.
            else:
                _cancel(repo, opened)
        pusher = BlobPusher(repo, self.pool, resume=self.unfinished)
        outcome = pusher.push(Descriptor(BLOB_TYPE, digest, upload.size), content)
        return outcome if upload.size <= upload.chunk_max else f"{outcome} (larger than one request takes)"

    def _discard(self, request: Request, upload: Upload) -> None:
        self.uploads.remove(upload)
        if upload.upstream_upload is not None:
            client = self.upstream.client(request.authorization)
            try:
                _cancel(client.repository(upload.repository, push=True), upload.upstream_upload)
            finally:
                client.session.http.close()


def _cancel(repo: Repository, location: str) -> None:
    """Cancel an upstream upload the relay will not use; if that fails, the upstream purges it
    as abandoned in time."""
    try:
        repo.cancel_upload(location)
    except ClientError as error:
        log.info("cancelling an upload upstream failed (the upstream purges it in time): %s", error)


def _upload_headers(upload: Upload) -> list[tuple[str, str]]:
    return [("Location", f"/v2/{upload.repository}/blobs/uploads/{upload.id}"),
            ("Range", f"0-{max(upload.size - 1, 0)}"), ("Docker-Upload-UUID", upload.id)]


def _progress(status: int, upload: Upload) -> Reply:
    return Reply(status, [*_upload_headers(upload), API_VERSION])


def _exactly(blocks: Iterable[bytes], expected: int) -> Iterator[bytes]:
    """The blocks, checked to add up to `expected` bytes (SizeMismatch carries the count)."""
    count = 0
    for block in blocks:
        count += len(block)
        if count > expected:
            raise SizeMismatch(count)
        yield block
    if count != expected:
        raise SizeMismatch(count)


def _size_invalid(span: str, length: int) -> Reply:
    return oci_error(400, "SIZE_INVALID", f"Content-Range {span!r} does not match a body of {length} bytes")


def _failure(error: ClientError) -> Reply:
    """What the client hears when the upstream did not take the blob."""
    if isinstance(error, AuthError):
        return oci_error(401, "UNAUTHORIZED", str(error))
    if isinstance(error, RegistryError) and 400 <= error.status < 500:
        return oci_error(error.status, error.code or "UNKNOWN", str(error))
    return oci_error(502, "UNKNOWN", f"the upstream registry did not take the blob: {error}")
