"""Every endpoint of the registry on one screen. Paths are matched after `/v2/`.

API Gateway hands every `/v2/...` request to one greedy route; this table, not API
Gateway, decides which handler runs, so tests, the local mode and the deployed API route
identically. Order matters only where two patterns overlap: the first match wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from chalice import Response

from chalicelib.api.handlers import base, blobs, discovery, manifests, uploads
from chalicelib.api.request import RegistryRequest
from chalicelib.registry import Registry

Handler = Callable[[RegistryRequest, Registry], Response]

NAME = r"(?P<name>.+)"  # names contain slashes; checked against the spec's grammar later
REFERENCE = r"(?P<reference>[^/]+)"
DIGEST = r"(?P<digest>[^/]+)"
UUID = r"(?P<uuid>[^/]+)"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    regex: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(f"^{self.pattern}$"))


ROUTES: tuple[Route, ...] = (
    Route("GET",    r"",                                base.version_check),
    Route("HEAD",   r"",                                base.version_check),
    Route("GET",    r"_catalog",                        discovery.catalog),
    Route("GET",    rf"{NAME}/tags/list",               discovery.tags),
    Route("GET",    rf"{NAME}/referrers/{DIGEST}",      discovery.referrers),
    Route("GET",    rf"{NAME}/manifests/{REFERENCE}",   manifests.get),
    Route("HEAD",   rf"{NAME}/manifests/{REFERENCE}",   manifests.head),
    Route("PUT",    rf"{NAME}/manifests/{REFERENCE}",   manifests.put),
    Route("DELETE", rf"{NAME}/manifests/{REFERENCE}",   manifests.delete),
    Route("POST",   rf"{NAME}/blobs/uploads/?",         uploads.start),
    Route("GET",    rf"{NAME}/blobs/uploads/{UUID}",    uploads.status),
    Route("PATCH",  rf"{NAME}/blobs/uploads/{UUID}",    uploads.patch),
    Route("PUT",    rf"{NAME}/blobs/uploads/{UUID}",    uploads.finish),
    Route("DELETE", rf"{NAME}/blobs/uploads/{UUID}",    uploads.cancel),
    Route("GET",    rf"{NAME}/blobs/{DIGEST}",          blobs.get),
    Route("HEAD",   rf"{NAME}/blobs/{DIGEST}",          blobs.head),
    Route("DELETE", rf"{NAME}/blobs/{DIGEST}",          blobs.delete),
)

# The methods API Gateway must pass through to the handler.
METHODS = sorted({route.method for route in ROUTES} | {"POST", "PATCH"})
