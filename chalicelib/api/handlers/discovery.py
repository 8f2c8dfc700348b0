"""Listings: tags, the catalog, referrers."""

from typing import Any

from chalice import Response

from chalicelib.api.pagination import MAX_PAGE, after, next_link, page_size
from chalicelib.api.request import RegistryRequest
from chalicelib.api.responses import json_body
from chalicelib.digest.digests import Digest
from chalicelib.errors import Oci, RegistryError
from chalicelib.manifests.mediatypes import OCI_INDEX
from chalicelib.naming import MAX_NAME_LENGTH, MAX_TAG_LENGTH
from chalicelib.registry import Registry


def tags(req: RegistryRequest, reg: Registry) -> Response:
    name = req.params["name"]
    size, last = page_size(req.arg("n")), after(req.arg("last"), MAX_TAG_LENGTH)
    page = reg.meta.list_tags(name, size, last)
    if not page.items and not reg.meta.repository_exists(name):
        raise RegistryError(Oci.NAME_UNKNOWN, detail={"name": name})
    return json_body({"name": name, "tags": page.items},
                     headers=next_link(f"/v2/{name}/tags/list", size, page.items, page.more))


def catalog(req: RegistryRequest, reg: Registry) -> Response:
    """A page of the repositories the caller may see. Pages are filled from what the caller
    may see, and the next link names the last of those: a name the caller may not see never
    appears, not even in `Link`."""
    size, cursor = page_size(req.arg("n")), after(req.arg("last"), MAX_NAME_LENGTH)
    may_see = reg.auth.reader(req.principal)
    visible: list[str] = []
    more, batch = size > 0, size
    while more and len(visible) <= size:
        page = reg.meta.list_repositories(batch, cursor)
        visible += [name for name in page.items if may_see(name)]
        more, cursor = page.more and bool(page.items), page.items[-1] if page.items else cursor
        batch = MAX_PAGE  # past the first page, names the caller may not see cost no read each
    more = more or len(visible) > size
    return json_body({"repositories": visible[:size]},
                     headers=next_link("/v2/_catalog", size, visible[:size], more))


def referrers(req: RegistryRequest, reg: Registry) -> Response:
    subject = Digest.parse(req.params["digest"])
    artifact_type = req.arg("artifactType")
    return referrers_index(reg.manifests.referrers(req.params["name"], subject, artifact_type), artifact_type)


def referrers_index(descriptors: list[dict[str, Any]], artifact_type: str | None) -> Response:
    """The referrers API's answer: an image index of `descriptors`, filtered by `artifact_type`."""
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    return json_body(index, headers=headers, content_type=OCI_INDEX)
