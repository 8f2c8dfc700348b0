"""The relay's own upload API over HTTP, every way clients send a blob, with the relay in this
process in front of the local mode: chunks by length or chunked coding, with or without
Content-Range, a last chunk on PUT, monolithic POST and PUT; refusals; cancelling; mounts; a
client that goes away mid-chunk; and what passes through as it is."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

from berth.client import AuthError, Repository
from berth.relay.forward import Forwarder
from berth.relay.server import RelayServer, running
from berth.relay.sessions import Uploads
from berth.relay.upstream import Upstream
from tests.e2e.test_skopeo import access_lines
from tests.local import LocalServer, free_port
from tests.local.test_server import MISSING_TOKEN, no_answer_yet, raw_exchange
from tests.relay import CHUNK_MAX, MiB

OCTETS = {"Content-Type": "application/octet-stream"}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@contextmanager
def serve(upstream: str, spool: Path) -> Iterator[RelayServer]:
    """The relay, in this process, serving from a thread."""
    with running(("127.0.0.1", 0), Upstream.parse(upstream), spool=spool) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            thread.join()


@pytest.fixture
def relay(upstream: LocalServer, spool: Path) -> Iterator[RelayServer]:
    with serve(upstream.address, spool) as server:
        yield server


@pytest.fixture
def conn(relay: RelayServer) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection(*relay.server_address[:2], timeout=60)
    yield connection
    connection.close()


def call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | list[bytes] | None = None,
         headers: dict[str, str] | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    """A request; a list body goes chunked (Transfer-Encoding), one chunk per item."""
    sent = {**OCTETS, **(headers or {})} if body is not None else dict(headers or {})
    if isinstance(body, list):
        conn.request(method, path, body=iter(body), headers=sent, encode_chunked=True)
    else:
        conn.request(method, path, body=body, headers=sent)
    response = conn.getresponse()
    return response, response.read()


def start(conn: http.client.HTTPConnection, repo: str) -> str:
    response, _ = call(conn, "POST", f"/v2/{repo}/blobs/uploads/")
    assert response.status == 202
    location = response.getheader("Location", "")
    assert location.startswith(f"/v2/{repo}/blobs/uploads/")
    return location


def spooled(spool: Path) -> list[Path]:
    return [path for path in spool.rglob("*") if path.is_file()]


def error_code(body: bytes) -> str:
    return str(json.loads(body)["errors"][0]["code"])


def test_chunks_every_way_clients_send_them_make_one_blob(
        conn: http.client.HTTPConnection, relay: RelayServer, spool: Path) -> None:
    data = os.urandom(6 * MiB)  # more than one request takes: it goes by the direct path
    location = start(conn, "up/chunks")

    response, _ = call(conn, "PATCH", location, [data[:MiB], data[MiB:3 * MiB]])  # chunked, no range
    assert (response.status, response.getheader("Range")) == (202, f"0-{3 * MiB - 1}")
    response, _ = call(conn, "PATCH", location, data[3 * MiB:5 * MiB], {"Content-Range": f"{3 * MiB}-{5 * MiB - 1}"})
    assert response.status == 202
    response, _ = call(conn, "GET", location)
    assert (response.status, response.getheader("Range")) == (204, f"0-{5 * MiB - 1}")
    assert len(spooled(spool)) == 1

    response, _ = call(conn, "PUT", f"{location}?digest={digest_of(data)}", data[5 * MiB:])
    assert response.status == 201
    assert response.getheader("Location") == f"/v2/up/chunks/blobs/{digest_of(data)}"
    assert response.getheader("Docker-Content-Digest") == digest_of(data)
    assert spooled(spool) == []

    response, _ = call(conn, "HEAD", f"/v2/up/chunks/blobs/{digest_of(data)}")
    assert (response.status, response.getheader("Content-Length")) == (200, str(len(data)))
    response, _ = call(conn, "GET", f"/v2/up/chunks/blobs/{digest_of(data)}")
    assert response.status == 307  # to S3: the relay carries no pulled bytes
    assert requests.get(response.getheader("Location", ""), timeout=60).content == data


@pytest.mark.parametrize("size", [100_000, CHUNK_MAX + 1], ids=["one-request", "direct"])
def test_monolithic_uploads_by_post_and_by_put(conn: http.client.HTTPConnection, spool: Path, size: int) -> None:
    data = os.urandom(size)
    response, _ = call(conn, "POST", f"/v2/up/mono/blobs/uploads/?digest={digest_of(data)}", data)
    assert response.status == 201, response.read()
    other = os.urandom(size)
    location = start(conn, "up/mono")
    response, _ = call(conn, "PUT", f"{location}?digest={digest_of(other)}", other)  # containerd's way
    assert response.status == 201
    for blob in (data, other):
        response, _ = call(conn, "HEAD", f"/v2/up/mono/blobs/{digest_of(blob)}")
        assert (response.status, response.getheader("Content-Length")) == (200, str(size))
    assert spooled(spool) == []


def test_chunks_that_do_not_continue_the_upload_are_refused_and_it_goes_on(conn: http.client.HTTPConnection) -> None:
    data = os.urandom(3_000)
    location = start(conn, "up/ranges")
    response, _ = call(conn, "PATCH", location, data[:1_000], {"Content-Range": "0-999"})
    assert response.status == 202

    response, body = call(conn, "PATCH", location, data[1_000:2_000], {"Content-Range": "500-1499"})
    assert (response.status, error_code(body), response.getheader("Range")) == (416, "BLOB_UPLOAD_INVALID", "0-999")
    response, body = call(conn, "PATCH", location, data[1_000:2_000], {"Content-Range": "1000-1499"})
    assert (response.status, error_code(body)) == (400, "SIZE_INVALID")
    response, body = call(conn, "PATCH", location, [data[1_000:2_500]], {"Content-Range": "1000-1999"})
    assert (response.status, error_code(body)) == (400, "SIZE_INVALID")  # chunked: found out while reading

    response, _ = call(conn, "GET", location)
    assert response.getheader("Range") == "0-999"  # as before the refused chunks
    response, _ = call(conn, "PUT", f"{location}?digest={digest_of(data)}", data[1_000:],
                       {"Content-Range": "1000-2999"})
    assert response.status == 201


def test_a_wrong_digest_discards_the_upload(conn: http.client.HTTPConnection, spool: Path) -> None:
    location = start(conn, "up/wrong")
    response, body = call(conn, "PUT", f"{location}?digest={digest_of(b'other')}", b"these bytes")
    assert (response.status, error_code(body)) == (400, "DIGEST_INVALID")
    assert spooled(spool) == []
    response, body = call(conn, "GET", location)
    assert (response.status, error_code(body)) == (404, "BLOB_UPLOAD_UNKNOWN")


def test_cancelling_removes_the_file(conn: http.client.HTTPConnection, spool: Path) -> None:
    location = start(conn, "up/cancel")
    call(conn, "PATCH", location, b"x" * 10_000)
    assert len(spooled(spool)) == 1
    response, _ = call(conn, "DELETE", location)
    assert response.status == 204
    assert spooled(spool) == []
    response, body = call(conn, "PATCH", location, b"more")
    assert (response.status, error_code(body)) == (404, "BLOB_UPLOAD_UNKNOWN")


def test_mounts_happen_upstream(conn: http.client.HTTPConnection, spool: Path) -> None:
    data = os.urandom(5_000)
    call(conn, "POST", f"/v2/up/source/blobs/uploads/?digest={digest_of(data)}", data)
    response, _ = call(conn, "POST", f"/v2/up/target/blobs/uploads/?mount={digest_of(data)}&from=up/source")
    assert (response.status, response.getheader("Location")) == (201, f"/v2/up/target/blobs/{digest_of(data)}")
    assert spooled(spool) == []

    # Nothing to mount: the client gets an upload of the relay's, as from a registry.
    missing = digest_of(b"not there")
    response, _ = call(conn, "POST", f"/v2/up/target/blobs/uploads/?mount={missing}&from=up/source")
    assert response.status == 202
    response, _ = call(conn, "PUT", f"{response.getheader('Location')}?digest={missing}", b"not there")
    assert response.status == 201


def test_a_blob_the_upstream_refused_to_finish_continues_when_the_client_sends_it_again(
        conn: http.client.HTTPConnection, upstream: LocalServer, spool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As when the client's token expires while the parts go to S3: the client hears 401 and
    sends the blob again with a fresh token, and the same direct upload continues."""
    finish = Repository.finish_upload
    refusals = [AuthError("the upstream registry refused the client's token")]

    def expiring(self: Repository, location: str, digest: str, body: Any = None, length: int = 0) -> Any:
        if body is None and refusals:  # the finish of a direct upload
            raise refusals.pop()
        return finish(self, location, digest, body, length)

    monkeypatch.setattr(Repository, "finish_upload", expiring)
    data = os.urandom(CHUNK_MAX + 1)
    since = len(upstream.log())
    for status in (401, 201):
        location = start(conn, "up/expiring")
        response, _ = call(conn, "PUT", f"{location}?digest={digest_of(data)}", data)
        assert response.status == status
    log = access_lines(upstream, since, "/v2/up/expiring/blobs/uploads/")
    assert [target for method, target, _ in log if "berth-direct=" in target] == [
        f"/v2/up/expiring/blobs/uploads/?berth-direct={len(data)}"]  # one direct upload, finished the second time
    assert spooled(spool) == []


def test_a_client_gone_mid_chunk_leaves_the_upload_as_it_was(
        conn: http.client.HTTPConnection, relay: RelayServer, spool: Path) -> None:
    data = os.urandom(4_000)
    location = start(conn, "up/gone")
    call(conn, "PATCH", location, data[:1_000])
    with socket.create_connection(relay.server_address[:2]) as sock:
        sock.sendall(f"PATCH {location} HTTP/1.1\r\nHost: relay\r\nContent-Length: {MiB}\r\n\r\n".encode()
                     + os.urandom(100_000))
    response, _ = call(conn, "GET", location)
    assert response.getheader("Range") == "0-999"
    response, _ = call(conn, "PUT", f"{location}?digest={digest_of(data)}", data[1_000:])
    assert response.status == 201
    assert spooled(spool) == []


def test_idle_uploads_are_removed_with_their_files(tmp_path: Path) -> None:
    uploads = Uploads(tmp_path, idle_seconds=60)
    try:
        idle, fresh = uploads.open("a/b", None, CHUNK_MAX), uploads.open("a/b", None, CHUNK_MAX)
        idle.touched -= 120
        assert uploads.expire() == [idle]
        assert not idle.path.exists() and idle.id not in uploads
        assert fresh.path.exists() and fresh.id in uploads
    finally:
        uploads.close()
    assert list(tmp_path.iterdir()) == []


def test_upstream_urls_in_answers_point_at_the_relay() -> None:
    forwarder = Forwarder(Upstream.parse("https://registry.example.com"))
    response = requests.Response()
    response.raw = urllib3.HTTPResponse(status=201, headers={
        "Location": "https://registry.example.com/v2/a/blobs/uploads/1?x=y",
        "Link": '<https://registry.example.com/v2/a/tags/list?n=1&last=a>; rel="next"',
        "Server": "upstream", "Connection": "keep-alive", "Docker-Content-Digest": "sha256:00"})
    assert forwarder.response_headers(response) == [
        ("Location", "/v2/a/blobs/uploads/1?x=y"), ("Link", '</v2/a/tags/list?n=1&last=a>; rel="next"'),
        ("Docker-Content-Digest", "sha256:00")]
    presigned = requests.Response()
    presigned.raw = urllib3.HTTPResponse(status=307, headers={"Location": "https://bucket.s3.amazonaws.com/k?X=1"})
    assert forwarder.response_headers(presigned) == [("Location", "https://bucket.s3.amazonaws.com/k?X=1")]


def test_an_unreachable_upstream_is_a_bad_gateway(tmp_path: Path) -> None:
    with serve(f"127.0.0.1:{free_port()}", tmp_path) as relay:
        conn = http.client.HTTPConnection(*relay.server_address[:2], timeout=30)
        response, body = call(conn, "GET", "/v2/")
        assert (response.status, error_code(body)) == (502, "UNKNOWN")
        response, body = call(conn, "POST", "/v2/a/blobs/uploads/")
        assert response.status == 502
        conn.close()


def test_a_forwarded_body_larger_than_a_lambda_takes_is_refused(conn: http.client.HTTPConnection) -> None:
    response, body = call(conn, "PUT", "/v2/up/big/manifests/1", b"{" * (7 * MiB),
                          {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert (response.status, error_code(body)) == (413, "SIZE_INVALID")


def test_a_refused_chunk_is_answered_once_it_has_arrived_whole_and_the_connection_goes_on(
        relay: RelayServer) -> None:
    """Like API Gateway: containerd 1.6 writes a whole body before it reads the answer."""
    conn = http.client.HTTPConnection(*relay.server_address[:2], timeout=30)
    location = start(conn, "up/refused")
    conn.close()
    data = os.urandom(2 * MiB)
    with socket.create_connection(relay.server_address[:2], timeout=30) as sock:
        sock.sendall(f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                     f"Content-Range: 5-{len(data) + 4}\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data[:-1])
        assert no_answer_yet(sock)
        status, headers, body = raw_exchange(sock, data[-1:])
        assert (status, error_code(body)) == ("HTTP/1.1 416 Requested Range Not Satisfiable", "BLOB_UPLOAD_INVALID")
        assert ("Connection", "close") not in headers
        status, _, _ = raw_exchange(sock, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "OPTIONS"])
def test_methods_the_api_does_not_define_get_the_upstreams_answer(
        conn: http.client.HTTPConnection, method: str) -> None:
    """The relay answers no method itself that the upstream would not: API Gateway's 403."""
    location = start(conn, "up/methods")
    for path in ("/v2/", "/v2/up/methods/manifests/1", location, "/v2/up/methods/blobs/uploads/"):
        response, body = call(conn, method, path)
        assert (response.status, body) == (403, MISSING_TOKEN), (method, path)
    response, _ = call(conn, "GET", location)
    assert response.status == 204  # the relay's upload is still there


def test_a_content_length_of_thousands_of_digits_is_a_bad_request(relay: RelayServer) -> None:
    with socket.create_connection(relay.server_address[:2], timeout=30) as sock:
        status, headers, body = raw_exchange(sock, b"PATCH /v2/up/x/blobs/uploads/x HTTP/1.1\r\nHost: x\r\n"
                                                   b"Content-Length: " + b"7" * 5000 + b"\r\n\r\n")
    assert (status, error_code(body)) == ("HTTP/1.1 400 Bad Request", "UNSUPPORTED")
    assert ("Connection", "close") in headers
