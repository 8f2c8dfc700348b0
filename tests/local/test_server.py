"""The local mode over real sockets: HTTP framing, limits and concurrency as API Gateway and
Lambda would impose them, in front of the real handler."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from berth.local.apigateway import LAMBDA_PAYLOAD_LIMIT
from berth.local.server import Containers
from tests.local import LocalServer, local_server

OCTETS = {"Content-Type": "application/octet-stream"}
# API Gateway's own answers, byte for byte (its default template leaves no spaces).
GATEWAY_TOO_LONG = b'{"message":"Request Too Long"}'
MISSING_TOKEN = b'{"message":"Missing Authentication Token"}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with local_server(tmp_path_factory.mktemp("local")) as running:
        yield running


def call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response, response.read()


def start_upload(conn: http.client.HTTPConnection, repo: str) -> str:
    response, _ = call(conn, "POST", f"/v2/{repo}/blobs/uploads/")
    assert response.status == 202
    location = response.getheader("Location")
    assert location is not None
    return location


def push_blob(conn: http.client.HTTPConnection, repo: str, data: bytes) -> str:
    """POST, one PATCH with the whole blob, PUT ?digest=: what docker and skopeo do."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = start_upload(conn, repo)
    response, _ = call(conn, "PATCH", location, data, OCTETS)
    assert response.status == 202
    response, _ = call(conn, "PUT", f"{response.getheader('Location')}?digest={digest}")
    assert response.status == 201
    assert response.getheader("Docker-Content-Digest") == digest
    return digest


def fetch(url: str) -> bytes:
    """What a client does with the 307 Location of a blob GET (a presigned URL on moto)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        response, body = call(conn, "GET", f"{parts.path}?{parts.query}")
    finally:
        conn.close()
    assert response.status == 200
    return body


def raw_exchange(sock: socket.socket, request: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """Send bytes, read one response framed by its Content-Length only, leaving anything after
    it unread: a stray body would then show up as the start of the next response."""
    sock.sendall(request)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        assert data, "connection closed before the response headers"
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in lines)]
    length = int(next(v for k, v in headers if k.lower() == "content-length"))
    is_head = request.startswith(b"HEAD ")
    body_length = 0 if is_head else length
    while len(rest) < body_length:
        rest += sock.recv(65536)
    assert len(rest) == body_length, "bytes beyond the framed response"
    return status_line, headers, rest


def error_code(body: bytes) -> str:
    return str(json.loads(body)["errors"][0]["code"])


def test_version_check(server: LocalServer) -> None:
    conn = server.connect()
    response, body = call(conn, "GET", "/v2/")
    assert response.status == 200
    assert response.getheader("Docker-Distribution-API-Version") == "registry/2.0"
    assert json.loads(body) == {}


def test_chunked_patch_is_received_intact_and_the_blob_reads_back(server: LocalServer) -> None:
    data = os.urandom(1_500_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    conn = server.connect()
    location = start_upload(conn, "local/chunked")
    # podman's pattern: one PATCH, Transfer-Encoding: chunked, no Content-Length; uneven chunks.
    pieces = [data[i:i + 65_537] for i in range(0, len(data), 65_537)]
    conn.request("PATCH", location, body=iter(pieces),
                 headers={**OCTETS, "Transfer-Encoding": "chunked"}, encode_chunked=True)
    response = conn.getresponse()
    response.read()
    assert response.status == 202
    assert response.getheader("Range") == f"0-{len(data) - 1}"
    response, _ = call(conn, "PUT", f"{response.getheader('Location')}?digest={digest}")
    assert response.status == 201

    response, body = call(conn, "HEAD", f"/v2/local/chunked/blobs/{digest}")
    assert response.status == 200
    assert body == b""
    assert response.msg.get_all("Content-Length") == [str(len(data))]
    assert response.getheader("Docker-Content-Digest") == digest

    response, _ = call(conn, "GET", f"/v2/local/chunked/blobs/{digest}")
    assert response.status == 307
    presigned = response.getheader("Location")
    assert presigned is not None
    assert fetch(presigned) == data


def test_head_has_no_body_and_one_content_length(server: LocalServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        # A HEAD whose GET would carry an OCI error body, then more requests on the connection.
        host = f"Host: {server.address}\r\n".encode()
        for target in (b"/v2/local/nothing/manifests/latest", b"/v2/", b"/elsewhere"):
            status, headers, body = raw_exchange(sock, b"HEAD " + target + b" HTTP/1.1\r\n" + host + b"\r\n")
            get_status, _, get_body = raw_exchange(sock, b"GET " + target + b" HTTP/1.1\r\n" + host + b"\r\n")
            assert status == get_status
            assert body == b""
            lengths = [v for k, v in headers if k.lower() == "content-length"]
            assert lengths == [str(len(get_body))]


def no_answer_yet(sock: socket.socket, seconds: float = 1.0) -> bool:
    """Whether nothing (neither an answer nor a close) arrives on `sock` for `seconds`."""
    readable, _, _ = select.select([sock], [], [], seconds)
    return not readable


def test_an_over_limit_body_is_answered_only_once_it_has_arrived_whole(server: LocalServer) -> None:
    """As API Gateway does: containerd 1.6 writes a whole layer before it reads the answer, and
    deadlocks when the answer comes first. The answer is the gateway's own, and the connection
    carries the next request."""
    body = b"\0" * (LAMBDA_PAYLOAD_LIMIT + 1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"PATCH /v2/local/large/blobs/uploads/x HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/octet-stream\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:-1])
        assert no_answer_yet(sock)
        status, headers, answer = raw_exchange(sock, body[-1:])
        assert status == "HTTP/1.1 413 Request Entity Too Large"
        assert answer == GATEWAY_TOO_LONG
        assert ("Connection", "close") not in headers
        status, _, _ = raw_exchange(sock, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"


def test_an_over_limit_chunked_body_is_answered_only_once_it_has_arrived_whole(server: LocalServer) -> None:
    chunk = b"\1" * 1_048_576
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"PATCH /v2/local/large/blobs/uploads/x HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(7):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        assert no_answer_yet(sock)
        status, headers, answer = raw_exchange(sock, b"0\r\n\r\n")
        assert status == "HTTP/1.1 413 Request Entity Too Large"
        assert answer == GATEWAY_TOO_LONG
        status, _, _ = raw_exchange(sock, b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == "HTTP/1.1 200 OK"


@pytest.mark.parametrize("length", [b"9" * 5000, b"1" + b"0" * 18, b"\xb2"],
                         ids=["thousands-of-digits", "nineteen-digits", "not-ascii"])
def test_a_content_length_no_body_could_have_is_a_bad_request(server: LocalServer, length: bytes) -> None:
    """'²' is a digit to str.isdigit but not a number to int(); 5,000 digits are past what int()
    parses."""
    for expect in (b"", b"Expect: 100-continue\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            status, headers, body = raw_exchange(sock, b"PATCH /v2/local/x/blobs/uploads/x HTTP/1.1\r\nHost: x\r\n"
                                                       b"Content-Length: " + length + b"\r\n" + expect + b"\r\n")
        assert status == "HTTP/1.1 400 Bad Request"
        assert ("Connection", "close") in headers
        assert json.loads(body) == {"message": "Bad Request"}
    assert "Traceback" not in server.log()
    response, _ = call(server.connect(), "GET", "/v2/")
    assert response.status == 200


def test_a_client_resetting_its_connection_ends_it_quietly(server: LocalServer) -> None:
    """A client that closes with a response still unread resets the connection (as the test
    helpers' own readiness probe did, now and then): the server ends that connection, with no
    traceback, and goes on serving."""
    before = len(server.log())
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(1)  # the answer has started; the rest stays unread
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    response, _ = call(server.connect(), "GET", "/v2/")
    assert response.status == 200
    time.sleep(0.2)
    assert "Traceback" not in server.log()[before:], server.log()[before:]


def test_over_limit_body_is_refused_before_100_continue(server: LocalServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"PATCH /v2/local/large/blobs/uploads/x HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/octet-stream\r\nContent-Length: 1073741824\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        status, headers, body = raw_exchange(sock, b"")
    assert status == "HTTP/1.1 413 Request Entity Too Large"
    assert body == GATEWAY_TOO_LONG
    assert ("Connection", "close") in headers  # the body the client may still send is not read


def test_body_whose_event_would_exceed_the_payload_limit_gets_the_gateways_413_on_a_kept_connection(
        server: LocalServer) -> None:
    # 5 MiB fits the server's buffer but not the event once base64-encoded.
    conn = server.connect()
    location = start_upload(conn, "local/large")
    response, body = call(conn, "PATCH", location, b"\2" * 5 * 1_048_576, OCTETS)
    assert (response.status, body) == (413, GATEWAY_TOO_LONG)
    response, _ = call(conn, "GET", "/v2/")
    assert response.status == 200


def test_a_body_just_over_the_request_limit_reaches_the_function_which_refuses_it(server: LocalServer) -> None:
    conn = server.connect()
    location = start_upload(conn, "local/large")
    response, body = call(conn, "PATCH", location, b"\3" * 4_456_449, OCTETS)
    assert response.status == 413
    assert error_code(body) == "UNSUPPORTED"
    assert "4456448" in json.loads(body)["errors"][0]["message"]


@pytest.mark.parametrize("encoding, body", [
    ("chunked", b"zz\r\nabc\r\n0\r\n\r\n"),
    ("gzip", b""),
])
def test_malformed_body_framing_gets_400(server: LocalServer, encoding: str, body: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        request = f"PATCH /v2/local/x/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {encoding}\r\n\r\n"
        status, headers, _ = raw_exchange(sock, request.encode() + body)
    assert status == "HTTP/1.1 400 Bad Request"
    assert ("Connection", "close") in headers


def test_keep_alive_serves_many_requests_on_one_connection_quickly(server: LocalServer) -> None:
    conn = server.connect()
    response, _ = call(conn, "GET", "/v2/local/none/tags/list")
    assert response.status == 404
    sock = conn.sock
    started = time.monotonic()
    for method in ("HEAD", "GET") * 30:
        response, _ = call(conn, method, "/v2/")
        assert response.status == 200
    elapsed = time.monotonic() - started
    assert conn.sock is sock
    # ~0.05 s. With Nagle's algorithm on, each GET's body waits ~40 ms for a delayed ACK: 1.3 s.
    assert elapsed < 0.6, elapsed


def test_concurrent_pushes_from_several_threads_all_succeed(server: LocalServer) -> None:
    def push(index: int) -> tuple[str, str, int]:
        conn = server.connect()
        try:
            data = os.urandom(50_000 + index)
            repo = f"local/concurrent{index}"
            return repo, push_blob(conn, repo, data), len(data)
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        pushed = list(pool.map(push, range(16)))
    conn = server.connect()
    for repo, digest, size in pushed:
        response, _ = call(conn, "HEAD", f"/v2/{repo}/blobs/{digest}")
        assert response.status == 200
        assert response.getheader("Content-Length") == str(size)


def test_paths_outside_v2_get_api_gateways_403(server: LocalServer) -> None:
    for path in ("/", "/v1/", "/v2x/foo", "/health"):
        response, body = call(server.connect(), "GET", path)
        assert response.status == 403
        assert body == MISSING_TOKEN


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "OPTIONS", "CONNECT", "MKCOL", "get", "BREW"])
def test_methods_the_api_does_not_define_get_api_gateways_403(server: LocalServer, method: str) -> None:
    """API Gateway answers a method a resource lacks with MISSING_AUTHENTICATION_TOKEN, for
    `/v2/{proxy+}` as for `/token` and paths it has no resource for; the connection goes on."""
    conn = server.connect()
    for path in ("/v2/", "/v2/team/app/manifests/1", "/v2/team/app/blobs/uploads/x", "/token", "/elsewhere"):
        response, body = call(conn, method, path, b"{}", {"Content-Type": "application/json"})
        assert (response.status, body) == (403, MISSING_TOKEN), (method, path)
        assert response.getheader("x-amzn-ErrorType") == "MissingAuthenticationTokenException"
    response, _ = call(conn, "GET", "/v2/")
    assert response.status == 200


def test_access_log_has_method_path_status_and_time(server: LocalServer) -> None:
    call(server.connect(), "GET", "/v2/_catalog?n=1")
    deadline = time.monotonic() + 5
    while "GET /v2/_catalog?n=1 200 " not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


def test_each_container_is_a_separate_app_with_its_own_registry() -> None:
    # Chalice keeps app.current_request on the app: two requests at once need two apps.
    containers = Containers(2)
    with containers.borrow() as first, containers.borrow() as second:
        assert first is not second
        views = [app.routes["/v2/{proxy+}"]["GET"].view_function for app in (first, second)]
        assert views[0].__globals__["registry"] is not views[1].__globals__["registry"]
