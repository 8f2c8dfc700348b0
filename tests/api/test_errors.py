"""Bad input of every kind gets the OCI error body and status, never a 500 or a trace."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.registry import Registry
from tests.api.oci_fixtures import assert_oci_error

DIGEST = "sha256:" + "a" * 64


def test_version_check(client: Any) -> None:
    for path in ("/v2/", "/v2"):
        response = client.get(path)
        assert response.status == 200 and response.json() == {}
        assert response.header("Docker-Distribution-API-Version") == "registry/2.0"
    assert client.head("/v2/").status == 200


@pytest.mark.parametrize(
    "method, path, status, code",
    [
        ("GET", "/v2/UPPER/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/a//b/manifests/latest", 400, "NAME_INVALID"),
        ("GET", f"/v2/{'a' * 256}/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/a/manifests/-bad", 404, "MANIFEST_UNKNOWN"),
        ("DELETE", "/v2/a/manifests/-bad", 404, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/a/manifests/sha256:123", 400, "DIGEST_INVALID"),
        ("GET", "/v2/a/blobs/sha256:123", 400, "DIGEST_INVALID"),
        ("GET", "/v2/a/blobs/md5:" + "a" * 32, 400, "DIGEST_INVALID"),
        ("GET", f"/v2/a/blobs/{DIGEST}", 404, "BLOB_UNKNOWN"),
        ("GET", "/v2/a/manifests/latest", 404, "MANIFEST_UNKNOWN"),
        ("GET", f"/v2/a/manifests/{DIGEST}", 404, "MANIFEST_UNKNOWN"),
        ("DELETE", f"/v2/a/manifests/{DIGEST}", 404, "MANIFEST_UNKNOWN"),
        ("DELETE", f"/v2/a/blobs/{DIGEST}", 404, "BLOB_UNKNOWN"),
        ("PUT", "/v2/a/blobs/uploads/" + "0" * 32 + f"?digest={DIGEST}", 404, "BLOB_UPLOAD_UNKNOWN"),
        ("POST", "/v2/a/blobs/uploads/?digest=sha256:zz", 400, "DIGEST_INVALID"),
        ("POST", "/v2/a/blobs/uploads/?mount=nope&from=b", 400, "DIGEST_INVALID"),
        ("POST", f"/v2/a/blobs/uploads/?mount={DIGEST}&from=BAD", 400, "NAME_INVALID"),
        ("POST", "/v2/a/manifests/latest", 405, "UNSUPPORTED"),
        ("PATCH", "/v2/_catalog", 405, "UNSUPPORTED"),
        ("GET", "/v2/a/unknown/endpoint", 404, "UNSUPPORTED"),
        ("GET", "/v2/_catalog?n=abc", 400, "UNSUPPORTED"),
    ],
)
def test_bad_requests(client: Any, method: str, path: str, status: int, code: str) -> None:
    assert_oci_error(client.request(method, path), status, code)


def test_put_upload_without_digest(client: Any) -> None:
    location = client.post("/v2/a/blobs/uploads/").header("Location")
    error = assert_oci_error(client.put(location), 400, "DIGEST_INVALID")
    assert "digest" in error["message"]
    assert client.get(location).status == 204  # the upload is still there


def test_post_with_a_body_and_no_digest(client: Any) -> None:
    assert_oci_error(client.post("/v2/a/blobs/uploads/", body=b"xyz"), 400, "DIGEST_INVALID")


def test_outside_v2_is_api_gateways_own_403(client: Any) -> None:
    response = client.get("/v1/_ping")
    assert response.status == 403 and response.json() == {"message": "Missing Authentication Token"}


def test_the_gateways_own_answers_to_a_head_have_no_body(client: Any) -> None:
    assert (client.head("/v1/_ping").status, client.head("/v1/_ping").body) == (403, b"")
    too_large = client.head("/v2/", body=b"\0" * 5 * 1024 * 1024)
    assert (too_large.status, too_large.body) == (413, b"")


def test_an_internal_failure_is_a_json_500_without_a_trace(
        client: Any, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(registry.meta, "get_tag", explode)
    response = client.get("/v2/a/manifests/latest")
    error = assert_oci_error(response, 500, "UNKNOWN")
    assert "secret" not in response.body.decode() and "Traceback" not in response.body.decode()
    assert error["message"] == "internal error"
