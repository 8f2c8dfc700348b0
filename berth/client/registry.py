"""The registry API, one method per operation: `RegistryClient` for a registry,
`Repository` for one repository in it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast
from urllib.parse import urljoin

import requests

from berth.client.auth import Credentials
from berth.client.content import BLOCK
from berth.client.errors import ClientError, RegistryError
from berth.client.manifests import MANIFEST_TYPES, Manifest
from berth.client.session import Body, RegistrySession

REDIRECTS = (301, 302, 303, 307, 308)
ACCEPT_MANIFESTS = ", ".join(MANIFEST_TYPES)


@dataclass(frozen=True)
class UploadStart:
    """The answer to `POST /v2/<name>/blobs/uploads/`."""

    created: bool  # 201: the blob is in the repository now (mounted, or the registry had it)
    location: str  # the blob (created) or the upload session
    chunk_max: int | None = None  # OCI-Chunk-Max-Length: the largest body the registry takes
    part_size: int | None = None  # Berth-Part-Size: set when this is a direct upload
    part_count: int | None = None  # Berth-Part-Count

    @property
    def direct(self) -> bool:
        return self.part_size is not None and self.part_count is not None


@dataclass(frozen=True)
class PartListing:
    """The answer to `GET <upload>/parts` of a direct upload (docs/direct-upload.md)."""

    part_size: int
    part_count: int
    uploaded: dict[int, int]  # part number -> size S3 holds
    urls: dict[int, str]  # part number -> presigned PUT URL


def _int_header(response: requests.Response, name: str) -> int | None:
    value = response.headers.get(name)
    return int(value) if value and value.isascii() and value.isdigit() else None


class RegistryClient:
    """One registry (`host[:port]`). Remembers for the length of its life which repositories
    hold which blobs, so that pushing a blob again mounts it instead of sending it, and the
    largest request body the registry takes (learnt from its first upload)."""

    def __init__(self, host: str, *, credentials: Credentials | None = None, plain_http: bool | None = None,
                 insecure: bool = False) -> None:
        self.session = RegistrySession(host, credentials=credentials, plain_http=plain_http, insecure=insecure)
        self.chunk_max: int | None = None
        self._holders: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return self.session.host

    def repository(self, name: str, *, push: bool = False) -> Repository:
        """A repository; `push=True` asks for pull and push access (one token for both)."""
        return Repository(self, name, push)

    def ping(self) -> None:
        """`GET /v2/`: raises unless the registry answers (and accepts the credentials)."""
        self.session.request("GET", "/v2/", scope="", expect=(200,)).close()

    def remember(self, digest: str, repository: str) -> None:
        with self._lock:
            holders = self._holders.setdefault(digest, [])
            if repository not in holders:
                holders.append(repository)

    def holders(self, digest: str) -> list[str]:
        """Repositories known to hold the blob."""
        with self._lock:
            return list(self._holders.get(digest, ()))


class Repository:
    """The OCI API of one repository."""

    def __init__(self, client: RegistryClient, name: str, push: bool = False) -> None:
        self.client, self.name = client, name
        self.scope = f"repository:{name}:{'pull,push' if push else 'pull'}"

    def _request(self, method: str, path: str, expect: tuple[int, ...], scope: str | None = None,
                 **kwargs: Any) -> requests.Response:
        return self.client.session.request(method, path, scope=scope or self.scope, expect=expect, **kwargs)

    # Blobs

    def blob_size(self, digest: str) -> int | None:
        """The size of the blob if the repository holds it, else None."""
        response = self._request("HEAD", f"/v2/{self.name}/blobs/{digest}", (200, 404))
        response.close()
        if response.status_code == 404:
            return None
        return _int_header(response, "Content-Length")

    def open_blob(self, digest: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        """A stream of the blob's bytes (from `offset`, `length` of them if given), following the
        registry's redirect to storage. Exactly the stored bytes: no content decoding."""
        headers = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        response = self._request("GET", f"/v2/{self.name}/blobs/{digest}", (200, 206, *REDIRECTS),
                                 headers=headers, stream=True)
        if response.status_code in REDIRECTS:
            location = urljoin(response.url, response.headers["Location"])
            response.close()
            try:
                response = self.client.session.external("GET", location, headers=headers, stream=True)
            except requests.RequestException as error:
                raise ClientError(f"GET blob {digest} from storage: {type(error).__name__}") from None
            if response.status_code not in (200, 206):
                failure = RegistryError.from_response(response)
                response.close()
                raise failure
        raw = response.raw
        raw.decode_content = False
        if offset and response.status_code == 200:
            _skip(raw, offset)  # the server ignored Range: read up to the offset
        return cast(BinaryIO, raw)

    # Uploads

    def start_upload(self, *, digest: str | None = None, mount_from: str | None = None,
                     direct_size: int | None = None) -> UploadStart:
        """`POST .../blobs/uploads/`: plain, a mount of `digest` from another repository, or
        (with `direct_size`) a Berth direct upload, which registries without them treat as plain."""
        params: dict[str, str] = {}
        scope = self.scope
        if mount_from is not None:
            if digest is None:
                raise ValueError("a mount needs the digest")
            params = {"mount": digest, "from": mount_from}
            scope = f"{self.scope} repository:{mount_from}:pull"
        elif direct_size is not None:
            # No `digest` (the contract allows it): a registry without direct uploads would take
            # POST ?digest= for a monolithic upload of the empty body and refuse it.
            params = {"berth-direct": str(direct_size)}
        response = self._request("POST", f"/v2/{self.name}/blobs/uploads/", (201, 202), scope=scope, params=params)
        response.close()
        location = response.headers.get("Location")
        if not location:
            raise ClientError(f"the registry answered POST /v2/{self.name}/blobs/uploads/ without a Location")
        chunk_max = _int_header(response, "OCI-Chunk-Max-Length")
        if chunk_max:
            self.client.chunk_max = chunk_max
        return UploadStart(response.status_code == 201, location, chunk_max,
                           _int_header(response, "Berth-Part-Size"), _int_header(response, "Berth-Part-Count"))

    def send_chunk(self, location: str, body: Body, start: int, length: int) -> str:
        """`PATCH` one chunk at `start`; returns the upload's next location."""
        response = self._request("PATCH", location, (202,), body=body, headers={
            "Content-Type": "application/octet-stream", "Content-Length": str(length),
            "Content-Range": f"{start}-{start + length - 1}"})
        response.close()
        return response.headers.get("Location") or location

    def finish_upload(self, location: str, digest: str, body: Body = None, length: int = 0) -> requests.Response:
        """`PUT <upload>?digest=`, with the last bytes if any: 201 (stored) or 202 (a direct
        upload being verified)."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        response = self._request("PUT", location, (201, 202), params={"digest": digest}, body=body, headers=headers)
        response.close()
        return response

    def upload_offset(self, location: str) -> int:
        """How many bytes a chunked upload holds (`GET <upload>`, its Range header)."""
        response = self._request("GET", location, (204,))
        response.close()
        last = response.headers.get("Range", "0-0").rpartition("-")[2]
        return int(last) + 1 if last.isascii() and last.isdigit() and int(last) else 0

    def upload_verification(self, location: str) -> str | None:
        """A direct upload's `Berth-Verification` (`pending` while verifying); raises
        RegistryError (DIGEST_INVALID when the bytes did not match, BLOB_UPLOAD_UNKNOWN once
        the upload is over)."""
        response = self._request("GET", location, (204,))
        response.close()
        return response.headers.get("Berth-Verification")

    def upload_parts(self, location: str, first: int | None = None, count: int | None = None) -> PartListing:
        """`GET <upload>/parts`: part size and count, parts S3 holds, and presigned URLs."""
        base, _, query = location.partition("?")
        params = {k: str(v) for k, v in (("first", first), ("count", count)) if v is not None}
        path = f"{base.rstrip('/')}/parts" + (f"?{query}" if query else "")
        response = self._request("GET", path, (200,), params=params)
        try:
            doc = response.json()
            return PartListing(int(doc["partSize"]), int(doc["partCount"]),
                               {int(p["number"]): int(p["size"]) for p in doc.get("uploaded", [])},
                               {int(p["number"]): str(p["url"]) for p in doc.get("urls", [])})
        except (ValueError, KeyError, TypeError) as error:
            raise ClientError(f"a malformed part listing from {self.client.host}") from error
        finally:
            response.close()

    def cancel_upload(self, location: str) -> None:
        self._request("DELETE", location, (204, 404)).close()

    # Manifests and tags

    def get_manifest(self, reference: str) -> Manifest:
        """The manifest a tag or digest names, as stored (any of the four manifest types)."""
        response = self._request("GET", f"/v2/{self.name}/manifests/{reference}", (200,),
                                 headers={"Accept": ACCEPT_MANIFESTS})
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        manifest = Manifest.of(response.content, content_type if content_type in MANIFEST_TYPES else None)
        if reference.startswith("sha256:") and manifest.digest != reference:
            raise ClientError(f"{self.client.host}/{self.name}@{reference} is a manifest with digest {manifest.digest}")
        return manifest

    def put_manifest(self, reference: str, manifest: Manifest) -> str:
        """Store a manifest under a tag or its digest; returns its digest."""
        response = self._request("PUT", f"/v2/{self.name}/manifests/{reference}", (201,), body=manifest.data,
                                 headers={"Content-Type": manifest.media_type})
        response.close()
        digest = response.headers.get("Docker-Content-Digest") or manifest.digest
        if digest != manifest.digest:
            raise ClientError(f"the registry stored manifest {manifest.digest} as {digest}")
        return digest

    def tags(self) -> Iterator[str]:
        """Every tag, following the registry's pagination."""
        path: str | None = f"/v2/{self.name}/tags/list"
        while path:
            response = self._request("GET", path, (200,))
            yield from response.json().get("tags") or []
            path = response.links.get("next", {}).get("url")


def _skip(stream: Any, count: int) -> None:
    while count:
        block = stream.read(min(count, BLOCK))
        if not block:
            raise ClientError("a blob ended before the requested offset")
        count -= len(block)
