"""The local mode's HTTP front: API Gateway and a few Lambda containers, over real sockets.

Each request becomes the API Gateway proxy event the deployed API would send (through
`berth.local.apigateway`), runs in one of a small pool of independently loaded copies of
`app.py` (a Chalice app keeps the current request on the app object, so one copy serves one
request at a time, as a Lambda container does), and its result goes back as API Gateway
would send it. Unlike `chalice local` this decodes chunked request bodies, refuses bodies
over the Lambda payload limit without buffering them (but only once they have arrived whole,
as API Gateway answers), answers every method as API Gateway does, and keeps HEAD responses
bodiless.
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
    server: LocalRegistry

    def do_request(self) -> None:
        started = time.monotonic()
        try:
            body = RequestBody(self.rfile, self.headers)
            try:
                response = self._invoke(body.read(MAX_BODY))
            except TooLarge:
                body.discard()
                response = request_too_large()
        except BadBody:
            response = gateway_error(400, "Bad Request")
            self.close_connection = True
        except (BodyLost, OSError):
            self.close_connection = True
            return
        self._answer(response, started)

    def _answer(self, response: GatewayResponse, started: float) -> None:
        try:
            self._send(response)
        except OSError:
            self.close_connection = True
        access_log.info("%s %s %d %.1fms", self.command, self.path, response.status,
                        (time.monotonic() - started) * 1000)

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
        # A client that waits for 100 Continue sends nothing more: an oversize body is refused
        # at once, and the connection closes since the body may still follow.
        try:
            declared = content_length(self.headers) or 0
        except BadBody:
            return True  # do_request answers 400
        if declared <= MAX_BODY:
            return super().handle_expect_100()
        self.close_connection = True
        self._answer(request_too_large(), time.monotonic())
        return False


class LocalRegistry(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], containers: Containers) -> None:
        self.containers = containers
        super().__init__(address, Handler)
