"""Every endpoint of the registry on one screen: method, path, handler, and the access the
caller needs (`public`: none; `login`: any valid credentials; else a repository action).

API Gateway hands every `/v2/...` request to one greedy route; this table, not API
Gateway, decides which handler runs, so tests, the local mode and the deployed API route
identically. Order matters only where two patterns overlap: the first match wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from chalice import Response

from chalicelib.api.handlers import base, blobs, discovery, doctor, manifests, token, uploads
from chalicelib.api.request import RegistryRequest
from chalicelib.registry import Registry

Handler = Callable[[RegistryRequest, Registry], Response]

PUBLIC, LOGIN, PULL, PUSH, DELETE, CATALOG = "public", "login", "pull", "push", "delete", "catalog"
NAME = r"/v2/(?P<name>.+)"  # names contain slashes; checked against the spec's grammar later
REFERENCE = r"(?P<reference>[^/]+)"
DIGEST = r"(?P<digest>[^/]+)"
UUID = r"(?P<uuid>[^/]+)"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    access: str
    regex: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(f"^{self.pattern}\\Z"))


ROUTES: tuple[Route, ...] = (
    Route("GET",    r"/token",                          token.get,              PUBLIC),
    Route("POST",   r"/token",                          token.post,             PUBLIC),
    Route("GET",    r"/v2/?",                           base.version_check,     LOGIN),
    Route("HEAD",   r"/v2/?",                           base.version_check,     LOGIN),
    Route("GET",    r"/v2/_catalog",                    discovery.catalog,      CATALOG),
    # `berth doctor`'s report (a Berth extension): for known users, as the catalog is.
    Route("POST",   doctor.PATH,                        doctor.report,          CATALOG),
    Route("GET",    rf"{NAME}/tags/list",               discovery.tags,         PULL),
    Route("GET",    rf"{NAME}/referrers/{DIGEST}",      discovery.referrers,    PULL),
    Route("GET",    rf"{NAME}/manifests/{REFERENCE}",   manifests.get,          PULL),
    Route("HEAD",   rf"{NAME}/manifests/{REFERENCE}",   manifests.head,         PULL),
    Route("PUT",    rf"{NAME}/manifests/{REFERENCE}",   manifests.put,          PUSH),
    Route("DELETE", rf"{NAME}/manifests/{REFERENCE}",   manifests.delete,       DELETE),
    Route("POST",   rf"{NAME}/blobs/uploads/?",         uploads.start,          PUSH),
    Route("GET",    rf"{NAME}/blobs/uploads/{UUID}",    uploads.status,         PUSH),
    Route("GET",    rf"{NAME}/blobs/uploads/{UUID}/parts", uploads.parts,       PUSH),
    Route("PATCH",  rf"{NAME}/blobs/uploads/{UUID}",    uploads.patch,          PUSH),
    Route("PUT",    rf"{NAME}/blobs/uploads/{UUID}",    uploads.finish,         PUSH),
    Route("DELETE", rf"{NAME}/blobs/uploads/{UUID}",    uploads.cancel,         PUSH),
    Route("GET",    rf"{NAME}/blobs/{DIGEST}",          blobs.get,              PULL),
    Route("HEAD",   rf"{NAME}/blobs/{DIGEST}",          blobs.head,             PULL),
    Route("DELETE", rf"{NAME}/blobs/{DIGEST}",          blobs.delete,           DELETE),
)

# The methods API Gateway must pass through to the handler.
METHODS = sorted({route.method for route in ROUTES if route.pattern.startswith("/v2")})
