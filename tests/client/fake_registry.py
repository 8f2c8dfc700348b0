"""A small registry in this process that speaks the OCI upload API and Berth's direct upload
(docs/direct-upload.md), with faults to inject: the client's upload paths tested on their
own, over real HTTP, with part sizes small enough to be quick."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.helpers import serving

CHUNK_MAX = 4_456_448
MiB = 1024 * 1024
Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Upload:
    repo: str
    direct: bool
    data: bytearray = field(default_factory=bytearray)  # chunked uploads
    size: int = 0
    part_count: int = 0
    parts: dict[int, bytes] = field(default_factory=dict)  # direct uploads
    verifying: str | None = None  # the digest being checked after finishing
    polls_left: int = 0
    invalid: bool = False


class FakeRegistry:
    """`with FakeRegistry().running() as fake:` serves on `fake.host`. `direct=False` makes it
    a registry without direct uploads. Faults: `part_faults[n]` lists statuses S3 answers for
    part n before taking it (403: an expired URL); `patch_faults[n]` is what the nth PATCH
    gets; `drop_on_finish` parts are lost at the first finish (so it reports them missing);
    `corrupt` makes verification fail. `part_delay` holds each part PUT that long, so that
    `most_parts_at_once` shows how many the client sends in parallel."""

    def __init__(self, *, direct: bool = True, part_size: int = MiB, verify_polls: int = 2) -> None:
        self.direct, self.part_size, self.verify_polls = direct, part_size, verify_polls
        self.blobs: dict[str, dict[str, bytes]] = {}
        self.manifests: dict[str, dict[str, tuple[bytes, str]]] = {}
        self.uploads: dict[str, Upload] = {}
        self.log: list[tuple[str, str]] = []
        self.part_faults: dict[int, list[int]] = {}
        self.patch_faults: dict[int, int] = {}
        self.drop_on_finish: set[int] = set()
        self.corrupt = False
        self.part_delay = 0.0
        self.parts_at_once = self.most_parts_at_once = 0
        self.lock = threading.Lock()
        self.host = ""

    @contextmanager
    def running(self) -> Iterator[FakeRegistry]:
        fake = self

        class Handler(_Handler):
            registry = fake

        with serving(Handler) as port:
            self.host = f"127.0.0.1:{port}"
            yield self

    def requests(self, method: str, pattern: str = "") -> list[str]:
        with self.lock:
            return [path for m, path in self.log if m == method and re.search(pattern, path)]

    # Each handler returns (status, headers, body).

    def head_blob(self, repo: str, digest: str) -> Answer:
        data = self.blobs.get(repo, {}).get(digest)
        if data is None:
            return 404, {}, b""
        return 200, {"Content-Length": str(len(data)), "Docker-Content-Digest": digest}, b""

    def get_blob(self, repo: str, digest: str, range_header: str | None) -> Answer:
        data = self.blobs.get(repo, {}).get(digest)
        if data is None:
            return _error(404, "BLOB_UNKNOWN")
        if range_header:
            start, _, end = range_header.removeprefix("bytes=").partition("-")
            return 206, {}, data[int(start): int(end) + 1 if end else None]
        return 200, {}, data

    def start(self, repo: str, query: dict[str, str]) -> Answer:
        if "mount" in query:
            data = self.blobs.get(query.get("from", ""), {}).get(query["mount"])
            if data is not None:
                self.blobs.setdefault(repo, {})[query["mount"]] = data
                return 201, {"Location": f"/v2/{repo}/blobs/{query['mount']}"}, b""
        name = uuid.uuid4().hex
        headers = {"Location": f"/v2/{repo}/blobs/uploads/{name}", "Docker-Upload-UUID": name,
                   "OCI-Chunk-Max-Length": str(CHUNK_MAX)}
        if self.direct and "berth-direct" in query:
            size = int(query["berth-direct"])
            count = -(-size // self.part_size)
            self.uploads[name] = Upload(repo, True, size=size, part_count=count)
            headers.update({"Berth-Part-Size": str(self.part_size), "Berth-Part-Count": str(count)})
        else:
            self.uploads[name] = Upload(repo, False)
        return 202, headers, b""

    def parts(self, name: str, query: dict[str, str]) -> Answer:
        upload = self.uploads.get(name)
        if upload is None:
            return _error(404, "BLOB_UPLOAD_UNKNOWN")
        if not upload.direct or upload.verifying:
            return _error(400, "BLOB_UPLOAD_INVALID")
        first = int(query.get("first", 1))
        count = int(query.get("count", min(1000, upload.part_count)))
        numbers = range(first, min(first + count, upload.part_count + 1))
        urls = [{"number": n, "url": f"http://{self.host}/s3/{name}/{n}?X-Amz-Signature=secret"} for n in numbers]
        doc = {"partSize": self.part_size, "partCount": upload.part_count, "urls": urls,
               "uploaded": [{"number": n, "size": len(p)} for n, p in sorted(upload.parts.items())]}
        return 200, {"Content-Type": "application/json"}, json.dumps(doc).encode()

    def put_part(self, name: str, number: int, body: bytes) -> Answer:
        faults = self.part_faults.get(number)
        if faults:
            return faults.pop(0), {}, b"<Error/>"
        upload = self.uploads.get(name)
        if upload is None:
            return 404, {}, b""
        upload.parts[number] = body
        return 200, {"ETag": f'"{hashlib.md5(body).hexdigest()}"'}, b""

    def patch(self, name: str, body: bytes, content_range: str | None) -> Answer:
        upload = self.uploads.get(name)
        if upload is None:
            return _error(404, "BLOB_UPLOAD_UNKNOWN")
        fault = self.patch_faults.get(sum(method == "PATCH" for method, _ in self.log))
        if fault:
            return _error(fault, "UNKNOWN")
        if content_range and int(content_range.split("-")[0]) != len(upload.data):
            return _error(416, "BLOB_UPLOAD_INVALID")
        upload.data += body
        return 202, {"Location": f"/v2/{upload.repo}/blobs/uploads/{name}",
                     "Range": f"0-{max(len(upload.data) - 1, 0)}"}, b""

    def finish(self, name: str, digest: str, body: bytes) -> Answer:
        upload = self.uploads.get(name)
        if upload is None:
            return _error(404, "BLOB_UPLOAD_UNKNOWN")
        if not upload.direct:
            data = bytes(upload.data + body)
            del self.uploads[name]
            if digest_of(data) != digest:
                return _error(400, "DIGEST_INVALID")
            self.blobs.setdefault(upload.repo, {})[digest] = data
            return 201, {"Location": f"/v2/{upload.repo}/blobs/{digest}", "Docker-Content-Digest": digest}, b""
        for number in self.drop_on_finish:
            upload.parts.pop(number, None)
        self.drop_on_finish = set()
        missing = [n for n in range(1, upload.part_count + 1) if n not in upload.parts]
        if missing:
            return _error(400, "BLOB_UPLOAD_INVALID", {"missing": missing})
        upload.verifying, upload.polls_left = digest, self.verify_polls
        return 202, {"Location": f"/v2/{upload.repo}/blobs/{digest}", "Docker-Content-Digest": digest,
                     "Berth-Verification": "pending"}, b""

    def status(self, name: str) -> Answer:
        upload = self.uploads.get(name)
        if upload is None:
            return _error(404, "BLOB_UPLOAD_UNKNOWN")
        if upload.invalid:
            return _error(400, "DIGEST_INVALID")
        if upload.verifying and upload.polls_left <= 0:
            data = b"".join(upload.parts[n] for n in range(1, upload.part_count + 1))
            if self.corrupt or digest_of(data) != upload.verifying:
                upload.invalid = True
                return _error(400, "DIGEST_INVALID")
            self.blobs.setdefault(upload.repo, {})[upload.verifying] = data
            del self.uploads[name]
            return _error(404, "BLOB_UPLOAD_UNKNOWN")
        upload.polls_left -= 1
        headers = {"Range": f"0-{max(len(upload.data) - 1, 0)}"}
        if upload.verifying:
            headers["Berth-Verification"] = "pending"
        return 204, headers, b""

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> Answer:
        stored = self.manifests.setdefault(repo, {})
        digest = digest_of(body)
        stored[reference] = stored[digest] = (body, media_type)
        return 201, {"Location": f"/v2/{repo}/manifests/{digest}", "Docker-Content-Digest": digest}, b""

    def get_manifest(self, repo: str, reference: str) -> Answer:
        found = self.manifests.get(repo, {}).get(reference)
        if found is None:
            return _error(404, "MANIFEST_UNKNOWN")
        return 200, {"Content-Type": found[1], "Docker-Content-Digest": digest_of(found[0])}, found[0]


def _error(status: int, code: str, detail: Any = None) -> Answer:
    body = {"errors": [{"code": code, "message": code.lower(), **({"detail": detail} if detail else {})}]}
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


_BLOB = re.compile(r"^/v2/(?P<repo>.+)/blobs/(?P<digest>sha256:[a-f0-9]{64})$")
_UPLOADS = re.compile(r"^/v2/(?P<repo>.+)/blobs/uploads/$")
_UPLOAD = re.compile(r"^/v2/(?P<repo>.+)/blobs/uploads/(?P<uuid>[a-f0-9]{32})(?P<parts>/parts)?$")
_PART = re.compile(r"^/s3/(?P<uuid>[a-f0-9]{32})/(?P<number>\d+)$")
_MANIFEST = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<reference>[^/]+)$")


class _Handler(BaseHTTPRequestHandler):
    registry: FakeRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake = self.registry
        if url.path.startswith("/s3/"):
            self._hold_part(fake)
        with fake.lock:
            fake.log.append((self.command, self.path))
            status, headers, payload = self._route(fake, url.path, query, body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _hold_part(self, fake: FakeRegistry) -> None:
        with fake.lock:
            fake.parts_at_once += 1
            fake.most_parts_at_once = max(fake.most_parts_at_once, fake.parts_at_once)
        time.sleep(fake.part_delay)
        with fake.lock:
            fake.parts_at_once -= 1

    def _route(self, fake: FakeRegistry, path: str, query: dict[str, str], body: bytes) -> Answer:
        method = self.command
        if (m := _PART.match(path)) and method == "PUT":
            return fake.put_part(m["uuid"], int(m["number"]), body)
        if (m := _BLOB.match(path)) and method == "HEAD":
            return fake.head_blob(m["repo"], m["digest"])
        if (m := _BLOB.match(path)) and method == "GET":
            return fake.get_blob(m["repo"], m["digest"], self.headers.get("Range"))
        if (m := _UPLOADS.match(path)) and method == "POST":
            return fake.start(m["repo"], query)
        if m := _UPLOAD.match(path):
            if m["parts"] and method == "GET":
                return fake.parts(m["uuid"], query)
            if method == "PATCH":
                return fake.patch(m["uuid"], body, self.headers.get("Content-Range"))
            if method == "PUT":
                return fake.finish(m["uuid"], query["digest"], body)
            if method == "GET":
                return fake.status(m["uuid"])
            if method == "DELETE":
                return (204, {}, b"") if fake.uploads.pop(m["uuid"], None) else _error(404, "BLOB_UPLOAD_UNKNOWN")
        if (m := _MANIFEST.match(path)) and method == "PUT":
            return fake.put_manifest(m["repo"], m["reference"], body, self.headers.get("Content-Type", ""))
        if (m := _MANIFEST.match(path)) and method == "GET":
            return fake.get_manifest(m["repo"], m["reference"])
        return _error(404, "UNSUPPORTED")

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer
