"""An upstream registry over real HTTP for the cache's handler-level tests: what the cache
must cope with, switchable per test. It speaks the token flow (a 401 challenge naming a realm
on itself, bearer tokens) or Basic, answers blob GETs with a redirect to a "CDN" (the same
server under another host name, so another origin, as Docker Hub's is) or with the bytes, and
can be down, rate-limiting, lying about a digest, or ignoring Range. Every request is logged.
The end-to-end tests use real registries instead (tests/e2e/test_cache*.py)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.helpers import digest_of, serving

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class Logged:
    method: str
    path: str
    authorization: str | None
    host: str
    range: str | None = None


@dataclass
class UpstreamRegistry:
    auth: str | None = None  # None, "token" or "basic"
    user: str = "puller"
    password: str = "pull-secret"
    redirect: bool = True  # blob GETs redirect to the CDN; else the bytes are served here
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)  # (repo, ref) -> body, type
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, digest) -> bytes
    referrers: dict[tuple[str, str], list[dict[str, Any]]] | None = None  # None: no referrers API
    log: list[Logged] = field(default_factory=list)
    down: bool = False  # every request answered 503
    rate_limited: bool = False  # every request answered 429
    lies: dict[str, bytes] = field(default_factory=dict)  # digest -> what is served instead
    ignore_range: bool = False
    tokens: set[str] = field(default_factory=set)
    cdn_host: str = "localhost"  # where blob GETs are redirected (with this server's port)
    port: int = 0

    # ---- content ----------------------------------------------------------------------------

    def add_blob(self, repo: str, data: bytes) -> dict[str, Any]:
        self.blobs[(repo, digest_of(data))] = data
        return {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest_of(data),
                "size": len(data)}

    def add_manifest(self, repo: str, body: bytes, media_type: str, *tags: str) -> str:
        digest = digest_of(body)
        for reference in (digest, *tags):
            self.manifests[(repo, reference)] = (body, media_type)
        return digest

    def add_image(self, repo: str, tag: str, layers: list[bytes], **extra: Any) -> tuple[str, bytes]:
        """An image of these layers, tagged: its manifest digest and body."""
        config = self.add_blob(repo, json.dumps({"architecture": "amd64", "os": "linux", "n": uuid.uuid4().hex})
                               .encode())
        config["mediaType"] = "application/vnd.oci.image.config.v1+json"
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                           "layers": [self.add_blob(repo, layer) for layer in layers], **extra}).encode()
        return self.add_manifest(repo, body, OCI_MANIFEST, tag), body

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests_to(self, fragment: str) -> list[Logged]:
        return [entry for entry in self.log if fragment in entry.path]

    @contextmanager
    def running(self) -> Iterator[UpstreamRegistry]:
        upstream = self

        class Handler(_Handler):
            registry = upstream

        with serving(Handler, _Server) as port:
            self.port = port
            yield self


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops the connection mid-body (the cache does, on purpose) is no error."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    registry: UpstreamRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._answer(with_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(with_body=False)

    def _send(self, status: int, headers: dict[str, str], body: bytes, with_body: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", headers.get("Content-Length", str(len(body))))
        self.end_headers()
        if with_body and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str, headers: dict[str, str] | None = None, with_body: bool = True) -> None:
        body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
        self._send(status, {"Content-Type": "application/json", **(headers or {})}, body, with_body)

    def _answer(self, with_body: bool) -> None:
        reg = self.registry
        url = urlsplit(self.path)
        reg.log.append(Logged(self.command, url.path, self.headers.get("Authorization"),
                              self.headers.get("Host", ""), self.headers.get("Range")))
        if url.path.startswith("/cdn/"):
            return self._blob_bytes(url.path[len("/cdn/"):], with_body)
        if reg.down:
            return self._error(503, "UNAVAILABLE", with_body=with_body)
        if reg.rate_limited:
            return self._error(429, "TOOMANYREQUESTS", {"Retry-After": "7"}, with_body)
        if url.path == "/token":
            return self._token(parse_qs(url.query))
        parts = url.path.split("/")
        if len(parts) < 5 or parts[1] != "v2":
            return self._error(404, "NOT_FOUND", with_body=with_body)
        kind, reference, repo = parts[-2], parts[-1], "/".join(parts[2:-2])
        if not self._authorized(repo):
            return None
        if kind == "manifests":
            return self._manifest(repo, reference, with_body)
        if kind == "blobs":
            if (repo, reference) not in reg.blobs:
                return self._error(404, "BLOB_UNKNOWN", with_body=with_body)
            if with_body and reg.redirect:
                host = f"{reg.cdn_host}:{reg.port}"  # by default another origin than 127.0.0.1:port
                return self._send(307, {"Location": f"http://{host}/cdn/{repo}@{reference}?sig=1"}, b"", False)
            return self._blob_bytes(f"{repo}@{reference}", with_body)
        if kind == "referrers" and reg.referrers is not None:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                     "manifests": reg.referrers.get((repo, reference), [])}
            return self._send(200, {"Content-Type": OCI_INDEX}, json.dumps(index).encode(), with_body)
        if kind == "tags" and reference == "list":
            tags = sorted({ref for (r, ref) in reg.manifests if r == repo and ":" not in ref})
            if not tags:
                return self._error(404, "NAME_UNKNOWN", with_body=with_body)
            return self._send(200, {"Content-Type": "application/json"},
                              json.dumps({"name": repo, "tags": tags}).encode(), with_body)
        return self._error(404, "NOT_FOUND", with_body=with_body)

    def _authorized(self, repo: str) -> bool:
        reg = self.registry
        header = self.headers.get("Authorization") or ""
        if reg.auth == "basic":
            expected = "Basic " + base64.b64encode(f"{reg.user}:{reg.password}".encode()).decode()
            if header == expected:
                return True
            self._error(401, "UNAUTHORIZED", {"WWW-Authenticate": 'Basic realm="upstream"'})
            return False
        if reg.auth == "token":
            if header.startswith("Bearer ") and header[7:] in reg.tokens:
                return True
            challenge = (f'Bearer realm="http://127.0.0.1:{reg.port}/token",service="upstream",'
                         f'scope="repository:{repo}:pull"')
            self._error(401, "UNAUTHORIZED", {"WWW-Authenticate": challenge})
            return False
        return True

    def _token(self, query: dict[str, list[str]]) -> None:
        reg = self.registry
        expected = "Basic " + base64.b64encode(f"{reg.user}:{reg.password}".encode()).decode()
        if self.headers.get("Authorization") != expected or query.get("service") != ["upstream"]:
            return self._error(401, "UNAUTHORIZED")
        token = uuid.uuid4().hex
        reg.tokens.add(token)
        return self._send(200, {"Content-Type": "application/json"},
                          json.dumps({"token": token, "expires_in": 300}).encode(), True)

    def _manifest(self, repo: str, reference: str, with_body: bool) -> None:
        found = self.registry.manifests.get((repo, reference))
        if found is None:
            return self._error(404, "MANIFEST_UNKNOWN", with_body=with_body)
        body, media_type = found
        digest = digest_of(body)
        served = self.registry.lies.get(digest, body)
        return self._send(200, {"Content-Type": media_type, "Docker-Content-Digest": digest}, served, with_body)

    def _blob_bytes(self, key: str, with_body: bool) -> None:
        repo, _, digest = key.partition("@")
        digest = digest.split("?", 1)[0]
        data = self.registry.blobs.get((repo, digest))
        if data is None:
            return self._error(404, "BLOB_UNKNOWN", with_body=with_body)
        data = self.registry.lies.get(digest, data)
        start = 0
        ranged = self.headers.get("Range")
        if ranged and not self.registry.ignore_range and ranged.startswith("bytes="):
            start = int(ranged[6:].split("-", 1)[0])
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}",
                       "Docker-Content-Digest": digest}
            return self._send(206, headers, data[start:], with_body)
        headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream"}
        return self._send(200, headers, data, with_body)
