"""Building responses. Bodies are text or empty: Chalice refuses binary Content-Types unless
the request's Accept names one, so nothing the registry answers with is declared binary."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalice import Response

from chalicelib.errors import RegistryError

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}


def empty(status: int, headers: Mapping[str, str] | None = None) -> Response:
    return Response(body="", status_code=status, headers={"Content-Length": "0", **(headers or {})})


def text(body: str, status: int, headers: Mapping[str, str]) -> Response:
    return Response(body=body, status_code=status, headers=dict(headers))


def json_body(data: Any, status: int = 200, headers: Mapping[str, str] | None = None,
              content_type: str = "application/json") -> Response:
    return Response(body=json.dumps(data), status_code=status,
                    headers={"Content-Type": content_type, **(headers or {})})


def error(err: RegistryError) -> Response:
    return Response(body=err.body(), status_code=err.kind.status,
                    headers={**err.headers, "Content-Type": "application/json"})
