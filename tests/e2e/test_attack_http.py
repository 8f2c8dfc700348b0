"""The attacks of tests/api/test_attack_*.py that depend on real HTTP, against the local mode in
token mode: request targets as a hostile client writes them (never normalised by a client
library), the caller's address taken from the socket whatever the headers say, and 429 with
Retry-After on the wire."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.api.test_attack_logins import steady_window  # noqa: F401  (a fixture, used by name)
from tests.e2e.test_auth import berth
from tests.local import LocalServer, local_server

pytestmark = pytest.mark.e2e

ADMIN = ("admin", "admin-secret")
READER = ("reader", "reader-pw")  # may pull team/*


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _send(server: LocalServer, method: str, target: str, headers: dict[str, str] | None = None,
          body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One request with `target` exactly as given (http.client leaves it alone)."""
    conn = server.connect()
    try:
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _raw(server: LocalServer, request_line: bytes, headers: dict[str, str]) -> int:
    """A request line with bytes no client library would send (raw UTF-8)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = request_line + b"\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
        sock.sendall(head + b"Connection: close\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def _push(server: LocalServer, repo: str) -> None:
    """A one-layer image, pushed monolithically with Basic credentials (token mode takes them)."""
    admin = _basic(*ADMIN)
    config, layer = b"{}", repo.encode() * 10
    digests = ["sha256:" + hashlib.sha256(blob).hexdigest() for blob in (config, layer)]
    for blob, digest in zip((config, layer), digests, strict=True):
        status, _, body = _send(server, "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}",
                                {**admin, "Content-Type": "application/octet-stream"}, blob)
        assert status == 201, body
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": digests[0], "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": digests[1], "size": len(layer)}]}).encode()
    status, _, body = _send(server, "PUT", f"/v2/{repo}/manifests/1",
                            {**admin, "Content-Type": "application/vnd.oci.image.manifest.v1+json"}, manifest)
    assert status == 201, body


@contextmanager
def _token_server(workdir: Path) -> Iterator[LocalServer]:
    env = {"BERTH_AUTH": "token", "BERTH_BOOTSTRAP_USER": ":".join(ADMIN)}
    with local_server(workdir, env=env) as server:
        berth(server, "user", "add", READER[0], "--password-stdin", "--grant", "team/*=pull", stdin=f"{READER[1]}\n")
        yield server


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with _token_server(tmp_path_factory.mktemp("berth-attack")) as server:
        yield server


def test_request_targets_are_names_however_they_are_written(secured: LocalServer) -> None:
    _push(secured, "team/app")
    _push(secured, "secret/x")
    reader = _basic(*READER)
    assert _send(secured, "GET", "/v2/team/app/manifests/1", reader)[0] == 200
    assert _send(secured, "GET", "/v2/team%2Fapp/manifests/1", reader)[0] == 200
    for target in ("/v2/team/app/../../secret/x/manifests/1", "/v2/team/app/%2e%2e/%2e%2e/secret/x/manifests/1",
                   "/v2/team/../secret/x/manifests/1", "/v2//secret/x/manifests/1", "/v2/secret/x/manifests/1",
                   "/v2/secret%2Fx/manifests/1", "/v2/SECRET/x/manifests/1", "/v2/secret/x/manifests/1/",
                   "/v2/secret/x%00/manifests/1", "/v2/team/app/manifests/1/../../../secret/x/manifests/1",
                   "/v2/secret/x/./manifests/1", "/v2/team/app%2F..%2F..%2Fsecret%2Fx/manifests/1"):
        status, headers, body = _send(secured, "GET", target, reader)
        assert status in (400, 401, 404), (target, status, body)
        if status == 401:  # the gateway's refusal, with its challenge
            assert headers["www-authenticate"].endswith('error="insufficient_scope"'), target
    for line in ("GET /v2/s\u00e9cret/x/manifests/1 HTTP/1.1", "GET /v2/secret/\u0445/manifests/1 HTTP/1.1"):
        assert _raw(secured, line.encode("utf-8"), {**reader, "Host": secured.address}) in (400, 404), line


def test_v2_with_and_without_its_slash_over_http(secured: LocalServer) -> None:
    for target in ("/v2", "/v2/"):
        for method in ("GET", "HEAD"):
            status, headers, _ = _send(secured, method, target)
            assert status == 401 and headers["www-authenticate"].startswith("Bearer realm="), (method, target)
            assert "x-amzn-remapped-www-authenticate" not in headers
            assert _send(secured, method, target, _basic(*READER))[0] == 200


@pytest.mark.usefixtures("steady_window")
def test_throttled_logins_say_when_to_retry_on_the_wire(secured: LocalServer) -> None:
    for _ in range(10):
        _send(secured, "GET", "/token?service=berth", _basic("victim", "guess"))
    form = b"grant_type=password&username=victim&password=guess&service=berth"
    answers = [_send(secured, "GET", "/token?service=berth", _basic("victim", "another")),
               _send(secured, "POST", "/token", {"Content-Type": "application/x-www-form-urlencoded"}, form),
               _send(secured, "GET", "/v2/", _basic("victim", "another"))]
    for status, headers, body in answers:
        assert status == 429, body
        assert 0 < int(headers["retry-after"]) <= 300
        assert json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"


@pytest.mark.usefixtures("steady_window")
def test_the_callers_address_is_the_sockets_whatever_the_headers(tmp_path: Path) -> None:
    """Its own server: this blocks the loopback address for five minutes."""
    with _token_server(tmp_path) as server:
        spoofs = ["X-Forwarded-For", "X-Real-IP", "Forwarded", "True-Client-IP", "X-Client-IP"]
        for index in range(30):
            header = spoofs[index % len(spoofs)]
            value = f"for=192.0.2.{index}" if header == "Forwarded" else f"192.0.2.{index}"
            _send(server, "GET", "/token?service=berth", {**_basic(f"ghost{index}", "guess"), header: value})
        for header in spoofs:
            status, headers, _ = _send(server, "GET", "/token?service=berth",
                                       {**_basic(*READER), header: "198.51.100.1"})
            assert status == 429 and headers["retry-after"], header
