"""Every error the registry answers with, as data, and the one exception that carries it.

The wire codes are the OCI Distribution Spec v1.1's (a 4xx body must use one of them);
several rows share a wire code with another status where the spec's statuses call for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from typing import Any


class Oci(Enum):
    """(wire code, HTTP status, default message)."""

    BLOB_UNKNOWN = ("BLOB_UNKNOWN", 404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = ("BLOB_UPLOAD_INVALID", 400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = ("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry")
    DIGEST_INVALID = ("DIGEST_INVALID", 400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = ("MANIFEST_BLOB_UNKNOWN", 400, "manifest references a manifest or blob unknown to registry")
    MANIFEST_INVALID = ("MANIFEST_INVALID", 400, "manifest invalid")
    MANIFEST_UNKNOWN = ("MANIFEST_UNKNOWN", 404, "manifest unknown to registry")
    NAME_INVALID = ("NAME_INVALID", 400, "invalid repository name")
    NAME_UNKNOWN = ("NAME_UNKNOWN", 404, "repository name not known to registry")
    SIZE_INVALID = ("SIZE_INVALID", 400, "provided length did not match content length")
    TOO_LARGE = ("SIZE_INVALID", 413, "request body too large")
    # A body over what one request carries: UNSUPPORTED, because docker stops at once on it and
    # shows its message, where it retries SIZE_INVALID five times (~50 s) before saying anything.
    BODY_TOO_LARGE = ("UNSUPPORTED", 413, "request body too large for one request")
    RANGE_INVALID = ("BLOB_UPLOAD_INVALID", 416, "requested range not satisfiable")
    PAGINATION_INVALID = ("UNSUPPORTED", 400, "n must be a non-negative integer")
    UNAUTHORIZED = ("UNAUTHORIZED", 401, "authentication required")
    DENIED = ("DENIED", 403, "requested access to the resource is denied")
    # Token mode's refusal: a 401 whose challenge says insufficient_scope, which docker and
    # containerd take as final, where a plain 401 would have them retry.
    INSUFFICIENT_SCOPE = ("DENIED", 401, "requested access to the resource is denied")
    UNSUPPORTED = ("UNSUPPORTED", 405, "the operation is unsupported")
    NOT_FOUND = ("UNSUPPORTED", 404, "no such endpoint")
    TOOMANYREQUESTS = ("TOOMANYREQUESTS", 429, "too many requests")
    # The pull-through cache's upstream failed it (docs/cache.md): the client's request was fine.
    UPSTREAM_UNAVAILABLE = ("UNKNOWN", 502, "the upstream registry could not answer")
    UPSTREAM_DIGEST = ("DIGEST_INVALID", 502, "the upstream's content does not match its digest")
    UPSTREAM_INVALID = ("MANIFEST_INVALID", 502, "the upstream's manifest cannot be served")
    UNKNOWN = ("UNKNOWN", 500, "unknown error")

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def message(self) -> str:
        return self.value[2]


class RegistryError(Exception):
    """The one exception domain code raises; `render` turns it into the OCI JSON answer."""

    def __init__(
        self,
        kind: Oci,
        message: str | None = None,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message or kind.message)
        self.kind = kind
        self.message = message or kind.message
        self.detail = detail
        self.headers = dict(headers or {})

    def body(self) -> str:
        error: dict[str, Any] = {"code": self.kind.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return json.dumps({"errors": [error]})
