"""One entry point for every `/v2/` request: route it, run it, render any error the same way."""

from __future__ import annotations

import logging

from chalice import Response

from chalicelib.api.handlers.cache import pull_through
from chalicelib.api.request import MAX_REQUEST_BODY, RegistryRequest
from chalicelib.api.responses import API_VERSION, error
from chalicelib.api.routes import CATALOG, LOGIN, PUBLIC, ROUTES, Route
from chalicelib.auth import throttle
from chalicelib.auth.permissions import CATALOG as CATALOG_SCOPE
from chalicelib.auth.permissions import Scope
from chalicelib.errors import Oci, RegistryError
from chalicelib.events import events_for
from chalicelib.naming import check_name
from chalicelib.registry import Registry
from chalicelib.telemetry import RequestRecord, Telemetry

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


def route_request(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route and its parameters, the repository name checked: what the function and the
    authorizer both decide on."""
    route, params = find_route(method, path)
    if "name" in params:
        check_name(params["name"])
    return route, params


def required_scope(route: Route, params: dict[str, str]) -> Scope | None:
    """The access a request needs, in the token protocol's terms (None: just valid credentials)."""
    if route.access == LOGIN:
        return None
    if route.access == CATALOG:
        return CATALOG_SCOPE
    return Scope("repository", params["name"], (route.access,))


def realm_base(req: RegistryRequest, public_url: str | None) -> str:
    """Where clients reach the registry, for the token realm: configured, else as they asked."""
    if public_url:
        return public_url.rstrip("/")
    proto = req.header("x-forwarded-proto") or "http"
    return f"{proto}://{req.header('host') or 'localhost'}"


def too_large(size: int) -> RegistryError:
    return RegistryError(
        Oci.BODY_TOO_LARGE,
        f"a request body may carry at most {MAX_REQUEST_BODY} bytes; send larger blobs in chunks "
        f"(PATCH with Content-Range, each at most {MAX_REQUEST_BODY} bytes), or push big layers with "
        f"`berth push`, or through `berth relay` with any client (docs/direct-upload.md)",
        detail={"size": size, "max": MAX_REQUEST_BODY},
    )


def operation_name(route: Route) -> str:
    """`manifests.get` and the like: the handler's module and function."""
    return f"{route.handler.__module__.rsplit('.', 1)[-1]}.{route.handler.__name__}"


def handle(req: RegistryRequest, registry: Registry, telemetry: Telemetry | None = None) -> Response:
    route: Route | None = None
    error_code: str | None = None
    try:
        if len(req.body) > MAX_REQUEST_BODY:
            raise too_large(len(req.body))
        route, req.params = route_request(req.method, req.path)
        if route.access != PUBLIC and req.throttled:
            raise throttle.too_many(req.throttled)  # the authorizer's verdict: no check here could answer better
        if route.access != PUBLIC:
            req.principal = registry.auth.authorize(req.header("authorization"), required_scope(route, req.params),
                                                    realm_base(req, registry.settings.public_url), req.source)
        handler = route.handler
        if registry.cache is not None and "name" in req.params and registry.cache.pull.covers(req.params["name"]):
            handler = pull_through(handler, req.params["name"])  # a cached repository (docs/cache.md)
        response = handler(req, registry)
    except RegistryError as err:
        response, error_code = error(err), err.kind.code
    except Exception:
        log.exception("unhandled error on %s %s", req.method, req.path[:300])
        response, error_code = error(RegistryError(Oci.UNKNOWN, "internal error")), Oci.UNKNOWN.code
    response.headers.update(API_VERSION)
    if registry.events is not None and route is not None and error_code is None:
        url = realm_base(req, registry.settings.public_url)
        registry.events.publish(events_for(operation_name(route), req, response, url))
    if telemetry is not None:
        telemetry.record(RequestRecord(
            request_id=req.request_id, method=req.method, operation=operation_name(route) if route else "",
            repository=req.params.get("name"), status=response.status_code, error_code=error_code,
            principal=req.principal.name, bytes_in=len(req.body)))
    return response
