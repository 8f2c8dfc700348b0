"""Repositories under a pull-through prefix (docs/cache.md): the pull endpoints answer from the
cache (chalicelib/cache/service.py); pushes and deletes there are refused. The dispatcher
swaps a route's handler for the one here when the name is covered (`pull_through`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chalice import Response

from chalicelib.api.handlers import blobs, discovery, manifests
from chalicelib.api.pagination import page_size
from chalicelib.api.request import RegistryRequest
from chalicelib.api.responses import empty, json_body, text
from chalicelib.errors import Oci, RegistryError
from chalicelib.registry import Registry

if TYPE_CHECKING:  # the cache's code loads with its first request (chalicelib/registry.py)
    from chalicelib.cache.service import PullThrough, Served

Handler = Callable[[RegistryRequest, Registry], Response]


def _cache(reg: Registry) -> PullThrough:
    assert reg.cache is not None
    return reg.cache.pull


def _manifest(req: RegistryRequest, reg: Registry) -> tuple[Served, dict[str, str]]:
    served = _cache(reg).manifest(req.params["name"], req.params["reference"])
    headers = {**manifests.manifest_headers(manifests.negotiated(req, served.record)),
               "Cache-Status": f"berth; {served.status}"}
    if served.stale:
        headers["Warning"] = '110 berth "Response is Stale"'
    return served, headers


def manifest_get(req: RegistryRequest, reg: Registry) -> Response:
    served, headers = _manifest(req, reg)
    # Checked to be UTF-8 JSON when fetched, so the text round-trips byte for byte.
    return text(served.body.decode("utf-8"), 200, headers)


def manifest_head(req: RegistryRequest, reg: Registry) -> Response:
    return text("", 200, _manifest(req, reg)[1])


def blob(req: RegistryRequest, reg: Registry) -> Response:
    answer = _cache(reg).blob(req.params["name"], req.params["digest"], req.method)
    return empty(answer.status, answer.headers)


def referrers(req: RegistryRequest, reg: Registry) -> Response:
    descriptors = _cache(reg).referrers(req.params["name"], req.params["digest"])
    artifact_type = req.arg("artifactType")
    if artifact_type:
        descriptors = [d for d in descriptors if d.get("artifactType") == artifact_type]
    return discovery.referrers_index(descriptors, artifact_type)


def tags(req: RegistryRequest, reg: Registry) -> Response:
    query = {}
    if req.arg("n") is not None:
        query["n"] = str(page_size(req.arg("n")))
    if req.arg("last") is not None:
        query["last"] = req.arg("last") or ""
    listing, link = _cache(reg).tags(req.params["name"], query)
    return json_body(listing, headers={"Link": link} if link else {})


_CACHED: dict[Handler, Handler] = {
    manifests.get: manifest_get,
    manifests.head: manifest_head,
    blobs.get: blob,
    blobs.head: blob,
    discovery.referrers: referrers,
    discovery.tags: tags,
}


def pull_through(handler: Handler, name: str) -> Handler:
    """The handler for a request on a cached repository: the cache's for pulls; a refusal for
    anything that would write (pushes, deletes), which only the upstream may do."""
    cached = _CACHED.get(handler)
    if cached is None:
        raise RegistryError(Oci.DENIED, f"{name} is in a pull-through cache: it can be pulled, not pushed to or "
                            "deleted from", detail={"name": name})
    return cached
