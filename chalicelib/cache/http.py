"""A small HTTP client on the standard library, for the cache's calls to upstream registries.

It never follows a redirect (the caller decides what a redirect means), streams bodies instead
of reading them whole, and is imported only when a request reaches a cached repository: the
registry's other requests pay nothing for it at cold start. `http.client` rather than
`requests`, which the Lambda bundle does not carry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DEFAULT_TIMEOUT = 10.0  # seconds per socket operation: an API request has 29 s in all


class Unreachable(Exception):
    """No answer: the host could not be reached, timed out, or broke the connection."""


class TooLarge(Exception):
    """A body longer than the caller would read."""


@dataclass
class HttpResponse:
    status: int
    url: str
    headers: list[tuple[str, str]]
    _raw: Any = field(repr=False)
    _connection: Any = field(repr=False)

    def header(self, name: str) -> str | None:
        """The first value of a header (a registry sends one WWW-Authenticate challenge first)."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    @property
    def length(self) -> int | None:
        value = self.header("content-length")
        return int(value) if value is not None and value.strip().isdigit() else None

    def read(self, limit: int) -> bytes:
        """The whole body, refused (TooLarge) past `limit` bytes."""
        try:
            data = self._raw.read(limit + 1)
        except (OSError, ValueError) as err:
            raise Unreachable(f"the body was cut short: {type(err).__name__}") from None
        finally:
            self.close()
        if len(data) > limit:
            raise TooLarge(limit)
        return bytes(data)

    def chunks(self, size: int) -> Iterator[bytes]:
        """The body in pieces of at most `size` bytes; Unreachable if the connection breaks."""
        try:
            while True:
                chunk = self._raw.read(size)
                if not chunk:
                    return
                yield bytes(chunk)
        except (OSError, ValueError) as err:
            raise Unreachable(f"the body was cut short: {type(err).__name__}") from None

    def close(self) -> None:
        """Drop the connection: an unread body (blob bytes) is not downloaded."""
        self._connection.close()


def request(method: str, url: str, headers: Mapping[str, str] | None = None,
            timeout: float = DEFAULT_TIMEOUT) -> HttpResponse:
    """One request on a connection of its own; the answer, body unread. Any status is an
    answer; only a failure to get one raises Unreachable."""
    import http.client

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unreachable(f"not an http(s) URL: {parts.scheme}://{parts.hostname}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    connection: Any
    if parts.scheme == "https":
        import ssl

        connection = http.client.HTTPSConnection(parts.netloc, timeout=timeout, context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        connection.request(method, target, headers=dict(headers or {}))
        raw = connection.getresponse()
    except (OSError, http.client.HTTPException) as err:
        connection.close()
        # The error's text may hold the URL; the type says enough and leaks nothing.
        raise Unreachable(f"{parts.hostname}: {type(err).__name__}") from None
    return HttpResponse(raw.status, url, list(raw.getheaders()), raw, connection)
