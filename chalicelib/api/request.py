"""A registry request as handlers see it, built from the API Gateway proxy event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.auth.authenticator import EVERYONE, Principal

# The raw body one request can carry: Lambda takes 6,291,456 bytes of event, API Gateway
# base64-encodes a binary body (x 4/3) and the rest of the event needs room.
MAX_REQUEST_BODY = 4_456_448


@dataclass
class RegistryRequest:
    method: str
    path: str  # from the root: /v2/..., /token
    query: dict[str, list[str]]
    headers: dict[str, list[str]]  # lower-case names; every value (clients repeat Accept)
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    principal: Principal = EVERYONE  # who is asking, once authorized
    request_id: str = ""
    source: str = ""  # the caller's address, as API Gateway saw it
    throttled: int = 0  # the authorizer found the caller's login throttled: seconds to wait

    @classmethod
    def from_event(cls, event: dict[str, Any], body: bytes) -> RegistryRequest:
        headers: dict[str, list[str]] = {}
        for name, values in (event.get("multiValueHeaders") or {}).items():
            headers.setdefault(name.lower(), []).extend(values)
        for name, value in (event.get("headers") or {}).items():
            headers.setdefault(name.lower(), [value])
        query = {k: list(v) for k, v in (event.get("multiValueQueryStringParameters") or {}).items()}
        for name, value in (event.get("queryStringParameters") or {}).items():
            query.setdefault(name, [value])
        return cls(
            method=event["requestContext"]["httpMethod"].upper(),
            path=event.get("path") or event["requestContext"].get("path", ""),
            query=query,
            headers=headers,
            body=body,
            request_id=str(event["requestContext"].get("requestId", "")),
            source=str((event["requestContext"].get("identity") or {}).get("sourceIp") or ""),
            throttled=_seconds((event["requestContext"].get("authorizer") or {}).get("throttled")),
        )

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[-1] if values else None

    def header_values(self, name: str) -> list[str]:
        return self.headers.get(name.lower(), [])


def _seconds(value: Any) -> int:
    # API Gateway hands the authorizer's context on as strings.
    text = str(value or "")
    return int(text) if text.isascii() and text.isdigit() and len(text) < 7 else 0
