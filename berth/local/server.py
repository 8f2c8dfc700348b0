"""The local mode's HTTP front: API Gateway and a few Lambda containers, over real sockets.

Each request becomes the API Gateway proxy event the deployed API would send (through
`berth.local.apigateway`), runs in one of a small pool of independently loaded copies of
`app.py` (a Chalice app keeps the current request on the app object, so one copy serves one
request at a time, as a Lambda container does), and its result goes back as API Gateway
would send it. Unlike `chalice local` this decodes chunked request bodies, refuses bodies
over the Lambda payload limit without buffering them, and keeps HEAD responses bodiless.
"""

from __future__ import annotations

import importlib.util
import logging
import queue
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from berth.local.apigateway import LAMBDA_PAYLOAD_LIMIT, GatewayResponse, gateway_error, invoke, request_too_large

APP_PATH = Path(__file__).resolve().parents[2] / "app.py"
# A body longer than the payload limit cannot fit in an event, whatever its encoding.
MAX_BODY = LAMBDA_PAYLOAD_LIMIT
# After a 413, read and discard what the client still sends (so it sees the answer rather
# than a reset), up to these bounds.
DRAIN_BYTES = 256 * 1024 * 1024
DRAIN_SECONDS = 10.0
READ_BLOCK = 1024 * 1024
MAX_LINE = 8192
MAX_TRAILERS = 64
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")

# Not under "berth": Chalice gives the app's logger (its app_name) a stdout handler.
access_log = logging.getLogger("berth_local.access")
log = logging.getLogger("berth_local")


def load_app(index: int, path: Path = APP_PATH) -> Any:
    """A fresh copy of the Chalice app (and its registry), as a new Lambda container would load it."""
    spec = importlib.util.spec_from_file_location(f"berth_container_{index}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


class Containers:
    """Warm Lambda containers: each request borrows one and has it to itself."""

    def __init__(self, count: int, path: Path = APP_PATH) -> None:
        self._free: queue.Queue[Any] = queue.Queue()
        for index in range(count):
            self._free.put(load_app(index, path))

    @contextmanager
    def borrow(self) -> Iterator[Any]:
        app = self._free.get()
        try:
            yield app
        finally:
            self._free.put(app)


class BodyTooLarge(Exception):
    def __init__(self, unread: int | None) -> None:
        super().__init__()
        self.unread = unread  # bytes of body still to come, where known


class BadRequest(Exception):
    pass


class ConnectionLost(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    timeout = 120  # idle keep-alive connections and stalled bodies
    server: LocalRegistry

    def do_request(self) -> None:
        started = time.monotonic()
        refused: BodyTooLarge | None = None
        try:
            response = self._invoke(self._read_body())
        except BodyTooLarge as err:
            # The rest of the body is not read, so the connection cannot carry another request.
            response, refused = request_too_large(), err
            self.close_connection = True
        except BadRequest:
            response = gateway_error(400, "Bad Request")
            self.close_connection = True
        except (ConnectionLost, OSError):
            self.close_connection = True
            return
        try:
            self._send(response)
            if refused is not None:
                self._drain(refused.unread)
        except OSError:
            self.close_connection = True
        access_log.info("%s %s %d %.1fms", self.command, self.path, response.status,
                        (time.monotonic() - started) * 1000)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_request

    def _invoke(self, body: bytes) -> GatewayResponse:
        try:
            with self.server.containers.borrow() as app:
                return invoke(app, self.command, self.path, list(self.headers.items()), body)
        except Exception:
            # API Gateway's answer when the function itself fails.
            log.exception("the Lambda handler failed on %s %s", self.command, self.path)
            return gateway_error(502, "Internal server error")

    def _send(self, response: GatewayResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)

    def handle_expect_100(self) -> bool:
        # Refuse an oversize body before the client sends it: no 100 Continue, just the 413.
        try:
            if (self._content_length() or 0) > MAX_BODY:
                return True
        except BadRequest:
            return True
        return super().handle_expect_100()

    def version_string(self) -> str:
        return "berth-local"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # do_request writes the access log, with timing

    def log_message(self, format: str, *args: Any) -> None:
        # The base class reports unparseable requests here. A TLS handshake is skopeo or podman
        # with --tls-verify=false trying HTTPS before HTTP: expected, not worth a line.
        if getattr(self, "raw_requestline", b"").startswith(b"\x16"):
            return
        log.warning("%s: %s", self.address_string(), format % args)

    # ---- request bodies ------------------------------------------------------------------

    def _read_body(self) -> bytes:
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None:
            if encoding.split(",")[-1].strip().lower() != "chunked":
                raise BadRequest
            return self._read_chunked()
        length = self._content_length()
        if not length:
            return b""
        if length > MAX_BODY:
            raise BodyTooLarge(unread=length)
        return self._read_exact(length)

    def _content_length(self) -> int | None:
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not values:
            return None
        if len(values) > 1 or not all(v.isdigit() for v in values):
            raise BadRequest
        return int(values.pop())

    def _read_exact(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) != size:
            raise ConnectionLost
        return data

    def _line(self) -> bytes:
        line = self.rfile.readline(MAX_LINE + 1)
        if not line:
            raise ConnectionLost
        if len(line) > MAX_LINE or not line.endswith(b"\n"):
            raise BadRequest
        return line.rstrip(b"\r\n")

    def _read_chunked(self) -> bytes:
        """Decode a chunked body, refusing it as soon as it grows past MAX_BODY."""
        parts: list[bytes] = []
        total = 0
        while True:
            size_field = self._line().split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_field):
                raise BadRequest
            size = int(size_field, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise BodyTooLarge(unread=None)
            parts.append(self._read_exact(size))
            if self._line():
                raise BadRequest
        for _ in range(MAX_TRAILERS):
            if not self._line():
                return b"".join(parts)
        raise BadRequest

    def _drain(self, unread: int | None) -> None:
        """Consume the rest of a refused body (all of it when its length is known, else until
        the client closes), within bounds, so the client reads the 413 rather than a reset."""
        deadline = time.monotonic() + DRAIN_SECONDS
        budget = DRAIN_BYTES if unread is None else min(unread, DRAIN_BYTES)
        try:
            self.connection.settimeout(DRAIN_SECONDS)
            while budget > 0 and time.monotonic() < deadline:
                block = self.rfile.read1(min(budget, READ_BLOCK))
                if not block:
                    return
                budget -= len(block)
        except OSError:
            pass


class LocalRegistry(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], containers: Containers) -> None:
        self.containers = containers
        super().__init__(address, Handler)
