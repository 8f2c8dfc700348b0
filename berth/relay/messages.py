"""A request as the relay sees it, and the answers it makes itself (the upstream's answers go
back as they came, berth.relay.forward)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.message import Message
from functools import cached_property
from urllib.parse import parse_qs, unquote, urlsplit

from berth.serving import RequestBody

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")


@dataclass
class Request:
    method: str
    target: str  # path and query, as received
    headers: Message
    body: RequestBody

    @cached_property
    def path(self) -> str:
        return unquote(urlsplit(self.target).path)

    @cached_property
    def query(self) -> dict[str, str]:
        """The first value of each query parameter."""
        return {k: v[0] for k, v in parse_qs(urlsplit(self.target).query, keep_blank_values=True).items()}

    @property
    def authorization(self) -> str | None:
        return self.headers.get("Authorization")


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def oci_error(status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    """An error in the registry API's shape, so clients show the message."""
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    return Reply(status, [("Content-Type", "application/json"), API_VERSION, *(headers or [])], body)
