import pytest

from chalicelib.api.dispatch import find_route
from chalicelib.api.handlers import base, blobs, discovery, manifests, token, uploads
from chalicelib.errors import Oci, RegistryError

DIGEST = "sha256:" + "a" * 64
UUID = "0" * 32


@pytest.mark.parametrize(
    "method, path, handler, params",
    [
        ("GET", "/v2/a/b/c/manifests/latest", manifests.get, {"name": "a/b/c", "reference": "latest"}),
        ("PUT", f"/v2/a/manifests/{DIGEST}", manifests.put, {"name": "a", "reference": DIGEST}),
        ("POST", "/v2/a/b/blobs/uploads/", uploads.start, {"name": "a/b"}),
        ("POST", "/v2/a/b/blobs/uploads", uploads.start, {"name": "a/b"}),
        ("PATCH", f"/v2/a/b/blobs/uploads/{UUID}", uploads.patch, {"name": "a/b", "uuid": UUID}),
        ("GET", f"/v2/a/b/blobs/{DIGEST}", blobs.get, {"name": "a/b", "digest": DIGEST}),
        # Names may contain the words the routes use.
        ("GET", f"/v2/blobs/manifests/blobs/{DIGEST}", blobs.get, {"name": "blobs/manifests", "digest": DIGEST}),
        ("GET", "/v2/tags/tags/list", discovery.tags, {"name": "tags"}),
        ("GET", f"/v2/a/referrers/{DIGEST}", discovery.referrers, {"name": "a", "digest": DIGEST}),
        ("GET", "/v2/_catalog", discovery.catalog, {}),
        ("GET", "/v2/", base.version_check, {}),
        ("GET", "/v2", base.version_check, {}),
        ("POST", "/token", token.post, {}),
    ],
)
def test_routes(method: str, path: str, handler: object, params: dict[str, str]) -> None:
    route, found = find_route(method, path)
    assert route.handler is handler
    assert found == params


def test_known_path_with_wrong_method_is_unsupported() -> None:
    with pytest.raises(RegistryError) as caught:
        find_route("POST", "/v2/a/manifests/latest")
    assert caught.value.kind is Oci.UNSUPPORTED


def test_unknown_path_is_not_found() -> None:
    with pytest.raises(RegistryError) as caught:
        find_route("GET", "/v2/a/nothing/here")
    assert caught.value.kind is Oci.NOT_FOUND
