"""One entry point for every `/v2/` request: route it, run it, render any error the same way."""

from __future__ import annotations

import logging

from chalice import Response

from chalicelib.api.errors import Oci, RegistryError
from chalicelib.api.request import MAX_REQUEST_BODY, RegistryRequest
from chalicelib.api.responses import API_VERSION, error
from chalicelib.api.routes import ROUTES, Route
from chalicelib.naming import check_name
from chalicelib.registry import Registry

log = logging.getLogger("berth")


def find_route(method: str, path: str) -> tuple[Route, dict[str, str]]:
    path_known = False
    for route in ROUTES:
        match = route.regex.match(path)
        if match is None:
            continue
        if route.method == method:
            return route, match.groupdict()
        path_known = True
    if path_known:
        raise RegistryError(Oci.UNSUPPORTED, f"{method} is not supported on this endpoint")
    raise RegistryError(Oci.NOT_FOUND, detail={"path": path[:300]})


def too_large(size: int) -> RegistryError:
    return RegistryError(
        Oci.TOO_LARGE,
        f"a request body may carry at most {MAX_REQUEST_BODY} bytes; send larger blobs in chunks "
        f"(PATCH with Content-Range, each at most {MAX_REQUEST_BODY} bytes)",
        detail={"size": size, "max": MAX_REQUEST_BODY},
    )


def handle(req: RegistryRequest, registry: Registry) -> Response:
    try:
        if len(req.body) > MAX_REQUEST_BODY:
            raise too_large(len(req.body))
        route, req.params = find_route(req.method, req.path)
        if "name" in req.params:
            check_name(req.params["name"])
        response = route.handler(req, registry)
    except RegistryError as err:
        response = error(err)
    except Exception:
        log.exception("unhandled error on %s /v2/%s", req.method, req.path[:300])
        response = error(RegistryError(Oci.UNKNOWN, "internal error"))
    response.headers.update(API_VERSION)
    return response
