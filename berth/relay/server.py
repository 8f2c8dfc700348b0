"""The relay's HTTP side: HTTP/1.1 with keep-alive, a thread per connection. Blob uploads are
answered here (berth.relay.uploads); every other request is forwarded to the upstream and its
answer streamed back (berth.relay.forward)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import requests

from berth.client.tasks import DEFAULT_PARALLEL
from berth.relay.forward import FORWARD_BODY_MAX, Forwarder, ForwardFailed
from berth.relay.messages import Reply, Request, oci_error
from berth.relay.sessions import Uploads
from berth.relay.uploads import Answer, BlobUploads
from berth.relay.upstream import Upstream
from berth.serving import BLOCK, BadBody, BodyLost, RequestBody, TooLarge
from berth.serving import Handler as BaseHandler

log = logging.getLogger("berth.relay")
access_log = logging.getLogger("berth.relay.access")

NO_BODY = frozenset({204, 304})


class Handler(BaseHandler):
    timeout = 300  # idle keep-alive connections and stalled bodies
    server_name = "berth-relay"
    log = log
    server: RelayServer

    def do_request(self) -> None:
        started = time.monotonic()
        try:
            body = RequestBody(self.rfile, self.headers)
            answer = self.server.answer(Request(self.command, self.path, self.headers, body))
        except BadBody:
            answer = oci_error(400, "UNSUPPORTED", "malformed request body framing")
            self.close_connection = True  # where the next request starts is unknown
        except (BodyLost, OSError):
            self.close_connection = True  # the client went away mid-request
            return
        try:
            if isinstance(answer, Reply):
                self._send_reply(answer)
            else:
                self._send_forwarded(answer)
        except OSError:
            self.close_connection = True
        finally:
            if not isinstance(answer, Reply):
                answer.close()
        status = answer.status if isinstance(answer, Reply) else answer.status_code
        access_log.info("%s %s %d %s %.0fms", self.command, self.path.split("?")[0], status,
                        "relay" if isinstance(answer, Reply) else "upstream", (time.monotonic() - started) * 1000)

    def _start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")

    def _send_reply(self, reply: Reply) -> None:
        self._start(reply.status, reply.headers)
        if reply.status not in NO_BODY:
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)

    def _send_forwarded(self, response: requests.Response) -> None:
        """The upstream's answer as it came: by its length when it has one, else chunked."""
        headers = self.server.forwarder.response_headers(response)
        bodiless = self.command == "HEAD" or response.status_code in NO_BODY
        chunked = not bodiless and "Content-Length" not in response.headers
        if chunked and self.request_version != "HTTP/1.1":
            self.close_connection = True  # no chunked coding before HTTP/1.1: the end of the connection ends it
            chunked = False
        self._start(response.status_code, headers + ([("Transfer-Encoding", "chunked")] if chunked else []))
        self.end_headers()
        if bodiless:
            return
        for block in response.raw.stream(BLOCK, decode_content=False):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class RelayServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], upstream: Upstream, uploads: Uploads,
                 pool: ThreadPoolExecutor) -> None:
        self.forwarder = Forwarder(upstream)
        self.blob_uploads = BlobUploads(upstream, self.forwarder, uploads, pool)
        self.spool = uploads.directory
        super().__init__(address, Handler)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host!s}:{port}"

    def answer(self, request: Request) -> Answer:
        """The answer to a request, once all of it has arrived: what the answer did not need of
        the body is read and dropped first, as API Gateway does (a client that writes a whole
        body before it reads, as containerd 1.6 does, would otherwise wait forever)."""
        answer = self._answer(request)
        try:
            request.body.discard()
        except BaseException:
            if not isinstance(answer, Reply):
                answer.close()
            raise
        return answer

    def _answer(self, request: Request) -> Answer:
        try:
            if self.blob_uploads.handles(request):
                return self.blob_uploads.answer(request)
            return self.forwarder.send(request.method, request.target, request.headers,
                                       request.body.read(FORWARD_BODY_MAX))
        except TooLarge:
            return oci_error(413, "SIZE_INVALID", f"a body the relay forwards may carry at most {FORWARD_BODY_MAX} "
                             "bytes (manifests are smaller)")
        except ForwardFailed as error:
            return oci_error(502, "UNKNOWN", f"the upstream registry did not answer: {error}")
        except (BadBody, BodyLost):
            raise
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return oci_error(500, "UNKNOWN", "the relay failed; its log says why")


@contextmanager
def running(listen: tuple[str, int], upstream: Upstream, *, spool: Path | None = None,
            parallel: int = DEFAULT_PARALLEL, idle_seconds: float = 3600.0) -> Iterator[RelayServer]:
    """A relay listening on `listen`, its uploads spooled in a directory made under `spool`,
    `parallel` direct-upload parts in flight at most (each streams from its file: memory does
    not grow with part size). Serve with `serve_forever()`; on leaving, every spool file goes."""
    uploads = Uploads(spool, idle_seconds)
    pool = ThreadPoolExecutor(parallel, "berth-relay-part")
    try:
        server = RelayServer(listen, upstream, uploads, pool)
        try:
            yield server
        finally:
            server.server_close()
            server.forwarder.close()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        uploads.close()

