"""What the client raises: one base class, so a program can catch everything it does."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests


class ClientError(Exception):
    """Something the client could not do: a bad argument, an unreadable source, a failed step."""


class AuthError(ClientError):
    """The registry wants credentials the client does not have, or refused the ones it has."""


class RegistryError(ClientError):
    """The registry (or S3) answered with an unexpected status. `code`, `message` and `detail`
    come from the OCI error body when there is one."""

    def __init__(self, method: str, url: str, status: int, code: str | None = None,
                 message: str | None = None, detail: Any = None) -> None:
        self.method, self.status, self.code, self.message, self.detail = method, status, code, message, detail
        # Never the query: presigned URLs carry signatures, upload URLs may carry digests only.
        self.path = urlsplit(url).path
        text = f"{method} {self.path}: {status}"
        if code:
            text += f" {code}"
        if message:
            text += f": {message}"
        super().__init__(text)

    @classmethod
    def from_response(cls, response: requests.Response) -> RegistryError:
        code = message = detail = None
        try:
            errors = response.json().get("errors") or []
        except (ValueError, AttributeError):
            errors = []
        if errors and isinstance(errors[0], dict):
            code, message, detail = errors[0].get("code"), errors[0].get("message"), errors[0].get("detail")
        request = response.request
        return cls(request.method or "?", request.url or response.url, response.status_code, code, message, detail)
