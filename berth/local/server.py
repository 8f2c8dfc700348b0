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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from berth.local.apigateway import LAMBDA_PAYLOAD_LIMIT, GatewayResponse, gateway_error, invoke, request_too_large
from berth.serving import BadBody, BodyLost, RequestBody, TooLarge, content_length
from berth.serving import Handler as BaseHandler

APP_PATH = Path(__file__).resolve().parents[2] / "app.py"
# A body longer than the payload limit cannot fit in an event, whatever its encoding.
MAX_BODY = LAMBDA_PAYLOAD_LIMIT

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


class Handler(BaseHandler):
    timeout = 120  # idle keep-alive connections and stalled bodies
    server_name = "berth-local"
    log = log
    drain_bytes = 256 * 1024 * 1024
    server: LocalRegistry

    def do_request(self) -> None:
        started = time.monotonic()
        body: RequestBody | None = None
        refused = False
        try:
            body = RequestBody(self.rfile, self.headers)
            response = self._invoke(body.read(MAX_BODY))
        except TooLarge:
            # The rest of the body is not read, so the connection cannot carry another request.
            response, refused = request_too_large(), True
            self.close_connection = True
        except BadBody:
            response = gateway_error(400, "Bad Request")
            self.close_connection = True
        except (BodyLost, OSError):
            self.close_connection = True
            return
        try:
            self._send(response)
            if refused:
                # A declared length was refused before any of it was read; a chunked body, midway.
                self.drain(body.length if body is not None else None)
        except OSError:
            self.close_connection = True
        access_log.info("%s %s %d %.1fms", self.command, self.path, response.status,
                        (time.monotonic() - started) * 1000)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_request

    def _invoke(self, body: bytes) -> GatewayResponse:
        try:
            with self.server.containers.borrow() as app:
                return invoke(app, self.command, self.path, list(self.headers.items()), body, self.client_address[0])
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
            if (content_length(self.headers) or 0) > MAX_BODY:
                return True
        except BadBody:
            return True
        return super().handle_expect_100()


class LocalRegistry(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], containers: Containers) -> None:
        self.containers = containers
        super().__init__(address, Handler)
