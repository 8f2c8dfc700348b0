"""What Berth's two HTTP servers (the local mode's API Gateway stand-in and `berth relay`)
share: request bodies read as they arrive, by `Content-Length` or `Transfer-Encoding:
chunked`, a block at a time (a layer streams without being held in memory), and a handler
base for HTTP/1.1 keep-alive with quiet logs that hands every method, known or not, to
`do_request`."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler
from io import BufferedIOBase
from typing import Any

BLOCK = 1024 * 1024
MAX_LINE = 8192
MAX_TRAILERS = 64
_CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
# A Content-Length with more significant digits than this (an exabyte) is no body anyone sends.
MAX_LENGTH_DIGITS = 18


class BadBody(Exception):
    """The body's framing is broken: the connection cannot carry another request."""


class BodyLost(Exception):
    """The client went away before the body ended."""


class TooLarge(Exception):
    """A body to be held in memory is longer than the server holds."""


class RequestBody:
    """The body of one request, read once, front to back: iterating again continues where the
    last iteration stopped."""

    def __init__(self, stream: BufferedIOBase, headers: Message) -> None:
        self._stream = stream
        encoding = headers.get("Transfer-Encoding")
        if encoding is not None and encoding.split(",")[-1].strip().lower() != "chunked":
            raise BadBody
        self.chunked = encoding is not None
        self.length = None if self.chunked else content_length(headers)
        self._blocks: Iterator[bytes] | None = None

    @property
    def present(self) -> bool:
        """Whether the request has a body at all (a chunked one may still turn out empty)."""
        return self.chunked or bool(self.length)

    def __iter__(self) -> Iterator[bytes]:
        """The rest of the body in blocks of at most BLOCK bytes."""
        if self._blocks is None:
            self._blocks = self._blocks_to_end()
        return self._blocks

    def _blocks_to_end(self) -> Iterator[bytes]:
        if self.chunked:
            yield from self._chunks()
        else:
            yield from self._exact(self.length or 0)

    def discard(self) -> None:
        """Read the rest of the body and drop it. Servers answer only once a request has
        arrived whole, as API Gateway does: a client that writes its whole body before it reads
        the answer (containerd 1.6) would otherwise wait forever."""
        for _ in self:
            pass

    def read(self, limit: int) -> bytes:
        """The whole body, refused with TooLarge beyond `limit` bytes (before reading any of it
        when the length is declared; `discard` then reads the rest)."""
        if self.length is not None and self.length > limit:
            raise TooLarge
        parts, total = [], 0
        for block in self:
            total += len(block)
            if total > limit:
                raise TooLarge
            parts.append(block)
        return b"".join(parts)

    def _exact(self, size: int) -> Iterator[bytes]:
        while size:
            try:
                block = self._stream.read(min(size, BLOCK))
            except OSError as error:  # reset, or timed out
                raise BodyLost from error
            if not block:
                raise BodyLost
            size -= len(block)
            yield block

    def _line(self) -> bytes:
        try:
            line = self._stream.readline(MAX_LINE + 1)
        except OSError as error:
            raise BodyLost from error
        if not line:
            raise BodyLost
        if len(line) > MAX_LINE or not line.endswith(b"\n"):
            raise BadBody
        return line.rstrip(b"\r\n")

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size_field = self._line().split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_field):
                raise BadBody
            size = int(size_field, 16)
            if size == 0:
                break
            yield from self._exact(size)
            if self._line():
                raise BadBody
        for _ in range(MAX_TRAILERS):
            if not self._line():
                return
        raise BadBody


def content_length(headers: Message) -> int | None:
    values = {v.strip() for v in headers.get_all("Content-Length") or []}
    if not values:
        return None
    if len(values) > 1 or not all(v.isascii() and v.isdigit() for v in values):
        raise BadBody
    value = values.pop().lstrip("0") or "0"
    if len(value) > MAX_LENGTH_DIGITS:
        raise BadBody  # also beyond what int() parses from thousands of digits
    return int(value)


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive and Nagle off (headers and body go out in separate writes);
    subclasses name themselves, log their own access lines and answer every request in
    `do_request`."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_name = "berth"
    log = logging.getLogger("berth")

    def do_request(self) -> None:
        raise NotImplementedError

    def handle_one_request(self) -> None:
        # A client may reset its connection at any point, say by closing it with our answer
        # still unread: that ends the connection, it is not the server's error to report.
        try:
            super().handle_one_request()
        except ConnectionError:
            self.close_connection = True

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        # http.server answers a method without a `do_` handler with its own 501; API Gateway
        # answers every method, so every method, TRACE and PROPFIND too, goes to `do_request`.
        if not hasattr(self, f"do_{self.command}"):
            setattr(self, f"do_{self.command}", self.do_request)
        return True

    def version_string(self) -> str:
        return self.server_name

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # subclasses write their own access lines, with timing

    def log_message(self, format: str, *args: Any) -> None:
        # The base class reports unparseable requests here. A TLS handshake is skopeo or podman
        # with --tls-verify=false trying HTTPS before HTTP: expected, not worth a line.
        if getattr(self, "raw_requestline", b"").startswith(b"\x16"):
            return
        self.log.warning("%s: %s", self.address_string(), format % args)
