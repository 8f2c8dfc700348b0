"""The OCI conformance "Pull" workflow, plus the error-body format every workflow relies on.

Setup pushes two image configs, one layer and two image manifests (one by tag, one by
digest) into a nested repository name; the tests then check existence (HEAD), retrieval
(GET), the 404s for missing content, and the teardown. Rules: spec.md "Pull", "Endpoints",
"Error Codes" (OCI Distribution Spec v1.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.api.oci_fixtures import (
    ABSENT_DIGEST,
    OCI_INDEX,
    OCI_MANIFEST,
    SPEC_ERROR_CODES,
    Blob,
    Manifest,
    assert_oci_error,
    error_codes,
    fetch,
    image_config,
    image_index,
    image_manifest,
    push_blob,
    push_manifest,
    random_blob,
    relative,
    start_upload,
    with_query,
)

REPO = "conformance/pull-workflow"
TAG = "tagtest0"
# The conformance suite's deliberately malformed reference: neither a tag nor a digest.
MALFORMED_REFERENCE = ".INVALID_MANIFEST_NAME"
ACCEPT_OCI = {"Accept": OCI_MANIFEST}


@dataclass
class PullContent:
    configs: list[Blob]
    layer: Blob
    manifests: list[Manifest]


@pytest.fixture
def pulled(client) -> PullContent:
    configs = [image_config(), image_config()]
    layer = random_blob(512)
    for blob in (*configs, layer):
        push_blob(client, REPO, blob)
    manifests = [image_manifest(c, [layer], embed_config_data=True) for c in configs]
    by_tag = push_manifest(client, REPO, TAG, manifests[0])
    assert 200 <= by_tag.status < 300, by_tag.body
    by_digest = push_manifest(client, REPO, manifests[1].digest, manifests[1])
    assert 200 <= by_digest.status < 300, by_digest.body
    return PullContent(configs, layer, manifests)


def test_version_check_answers_200(client):
    response = client.get("/v2/")
    assert response.status == 200
    # SHOULD, and clients MAY require it.
    assert response.header("Docker-Distribution-API-Version") == "registry/2.0"


# ---- blobs ---------------------------------------------------------------------------------

def test_nonexistent_blob_is_404_to_head_and_get(client, pulled):
    head = client.head(f"/v2/{REPO}/blobs/{ABSENT_DIGEST}")
    assert head.status == 404
    assert head.body == b""
    assert_oci_error(client.get(f"/v2/{REPO}/blobs/{ABSENT_DIGEST}"), 404, "BLOB_UNKNOWN")


def test_head_of_existing_blob_is_200_with_digest_and_length(client, pulled):
    for blob in (*pulled.configs, pulled.layer):
        response = client.head(f"/v2/{REPO}/blobs/{blob.digest}")
        assert response.status == 200
        assert response.body == b""
        if response.header("Docker-Content-Digest"):
            assert response.header("Docker-Content-Digest") == blob.digest
        assert response.header("Content-Length") == str(blob.size)


def test_get_of_existing_blob_yields_200_and_its_bytes(client, pulled):
    """A redirect to storage is how Berth serves blobs; a client that follows it (as the
    conformance suite's client does) must end at a 200 with exactly the blob's bytes."""
    for blob in (*pulled.configs, pulled.layer):
        first = client.get(f"/v2/{REPO}/blobs/{blob.digest}")
        if first.header("Docker-Content-Digest"):
            assert first.header("Docker-Content-Digest") == blob.digest
        fetched = fetch(client, f"/v2/{REPO}/blobs/{blob.digest}")
        assert fetched.status == 200
        assert fetched.body == blob.data


def test_get_of_blob_honours_range_requests(client, pulled):
    """SHOULD: a registry supports the Range request header on blob GETs."""
    blob = pulled.layer
    fetched = fetch(client, f"/v2/{REPO}/blobs/{blob.digest}", headers={"Range": "bytes=10-99"})
    assert fetched.status == 206
    assert fetched.body == blob.data[10:100]


def test_blobs_are_scoped_to_their_repository(client, pulled):
    response = client.head(f"/v2/conformance/other-repo/blobs/{pulled.layer.digest}")
    assert response.status == 404


# ---- manifests -----------------------------------------------------------------------------

def test_nonexistent_manifest_is_404_to_head_and_get(client, pulled):
    for reference in ("no-such-tag", ABSENT_DIGEST):
        response = client.head(f"/v2/{REPO}/manifests/{reference}", headers=ACCEPT_OCI)
        assert response.status == 404, (reference, response.status)
        assert_oci_error(client.get(f"/v2/{REPO}/manifests/{reference}", headers=ACCEPT_OCI), 404, "MANIFEST_UNKNOWN")


def test_malformed_manifest_reference_is_404_to_head_and_get(client, pulled):
    """The conformance suite's "nonexistent manifest" is `.INVALID_MANIFEST_NAME`, which is
    not a valid tag; it still expects 404 to HEAD and GET (spec.md "Pulling manifests": a
    manifest not found in the repository MUST be 404)."""
    head = client.head(f"/v2/{REPO}/manifests/{MALFORMED_REFERENCE}", headers=ACCEPT_OCI)
    get = client.get(f"/v2/{REPO}/manifests/{MALFORMED_REFERENCE}", headers=ACCEPT_OCI)
    assert (head.status, get.status) == (404, 404), get.body


def test_head_of_manifest_by_digest_is_200(client, pulled):
    for manifest in pulled.manifests:
        response = client.head(f"/v2/{REPO}/manifests/{manifest.digest}", headers=ACCEPT_OCI)
        assert response.status == 200
        assert response.body == b""
        if response.header("Docker-Content-Digest"):
            assert response.header("Docker-Content-Digest") == manifest.digest
        assert response.header("Content-Length") == str(manifest.size)
        assert response.header("Content-Type") == OCI_MANIFEST


def test_head_of_manifest_by_tag_is_200(client, pulled):
    response = client.head(f"/v2/{REPO}/manifests/{TAG}", headers=ACCEPT_OCI)
    assert response.status == 200
    if response.header("Docker-Content-Digest"):
        assert response.header("Docker-Content-Digest") == pulled.manifests[0].digest


def test_get_of_manifest_by_digest_returns_the_pushed_bytes(client, pulled):
    for manifest in pulled.manifests:
        response = client.get(f"/v2/{REPO}/manifests/{manifest.digest}", headers=ACCEPT_OCI)
        assert response.status == 200
        assert response.body == manifest.body
        assert response.header("Content-Type") == OCI_MANIFEST
        if response.header("Docker-Content-Digest"):
            assert response.header("Docker-Content-Digest") == manifest.digest


def test_get_of_manifest_by_tag_returns_the_pushed_bytes(client, pulled):
    response = client.get(f"/v2/{REPO}/manifests/{TAG}", headers=ACCEPT_OCI)
    assert response.status == 200
    assert response.body == pulled.manifests[0].body
    assert response.header("Content-Type") == OCI_MANIFEST
    if response.header("Docker-Content-Digest"):
        assert response.header("Docker-Content-Digest") == pulled.manifests[0].digest


def test_get_of_image_index_by_tag(client, pulled):
    index = image_index(pulled.manifests)
    assert push_manifest(client, REPO, "multi", index).status == 201
    response = client.get(f"/v2/{REPO}/manifests/multi", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
    assert response.status == 200
    assert response.body == index.body
    assert response.header("Content-Type") == OCI_INDEX


# ---- error codes ---------------------------------------------------------------------------

def test_bad_digest_reference_gets_400_or_404_with_oci_error_body(client, pulled):
    """The conformance suite sends a GET (with a stray body) for `sha256:totallywrong`."""
    response = client.get(f"/v2/{REPO}/manifests/sha256:totallywrong", body=b"blablabla",
                          headers={"Content-Type": OCI_MANIFEST})
    assert response.status in (400, 404)
    if response.status == 400:
        codes = error_codes(response)
        # The suite accepts any code from its own list: the spec's, plus two older ones.
        assert codes[0] in SPEC_ERROR_CODES | {"TAG_INVALID", "MANIFEST_UNVERIFIED"}, codes


def _chunk_size_mismatch(client):
    location = start_upload(client, REPO)
    return client.patch(relative(location), body=b"0123456789", headers={"Content-Range": "0-3"})


def _upload_unknown(client):
    return client.get(f"/v2/{REPO}/blobs/uploads/{'0' * 32}")


def _manifest_blob_unknown(client):
    return push_manifest(client, REPO, "dangling", image_manifest(image_config(), [random_blob(16)]))


def _digest_mismatch(client):
    location = start_upload(client, REPO)
    return client.put(with_query(location, digest=ABSENT_DIGEST), body=b"some bytes")


# Failure conditions the spec names, each with the code it expects.
SPEC_FAILURES = {
    "blob-unknown": (lambda c: c.get(f"/v2/{REPO}/blobs/{ABSENT_DIGEST}"), 404, "BLOB_UNKNOWN"),
    "manifest-unknown": (lambda c: c.get(f"/v2/{REPO}/manifests/nope"), 404, "MANIFEST_UNKNOWN"),
    "upload-unknown": (_upload_unknown, 404, "BLOB_UPLOAD_UNKNOWN"),
    "digest-invalid": (_digest_mismatch, 400, "DIGEST_INVALID"),
    "manifest-invalid": (lambda c: c.put(f"/v2/{REPO}/manifests/junk", body=b"blablabla",
                                         headers={"Content-Type": OCI_MANIFEST}), 400, "MANIFEST_INVALID"),
    "manifest-blob-unknown": (_manifest_blob_unknown, 400, "MANIFEST_BLOB_UNKNOWN"),
    "name-invalid": (lambda c: c.get("/v2/Not_A_Valid/NAME/tags/list"), 400, "NAME_INVALID"),
    "name-unknown": (lambda c: c.get("/v2/conformance/never-pushed/tags/list"), 404, "NAME_UNKNOWN"),
}


def test_spec_failure_conditions_answer_with_their_error_codes(client, pulled):
    """Each 4xx JSON body is {"errors": [{"code", "message", "detail"}, ...]} and carries the
    code the spec's table defines for the condition (spec.md "Error Codes")."""
    for case, (make, status, code) in SPEC_FAILURES.items():
        response = make(client)
        assert response.status == status, (case, response.status, response.body)
        codes = error_codes(response)
        assert codes[0] == code, (case, codes)


# Other 4xx answers Berth gives; their bodies are JSON, so their codes must still come from
# the spec's table ("The `code` field MUST be one of the following").
OTHER_FAILURES = {
    "chunk-length-mismatch": _chunk_size_mismatch,
    "method-unsupported": lambda c: c.put(f"/v2/{REPO}/blobs/{ABSENT_DIGEST}", body=b"x"),
    "tag-invalid-on-push": lambda c: push_manifest(c, REPO, MALFORMED_REFERENCE, image_manifest(image_config())),
    "pagination-n-invalid": lambda c: c.get(f"/v2/{REPO}/tags/list?n=lots"),
    "unknown-endpoint": lambda c: c.get(f"/v2/{REPO}/no-such-endpoint"),
}


@pytest.mark.parametrize("case", list(OTHER_FAILURES))
def test_other_4xx_bodies_use_only_spec_error_codes(client, pulled, case):
    response = OTHER_FAILURES[case](client)
    assert 400 <= response.status < 500, (response.status, response.body)
    for found in error_codes(response):
        assert found in SPEC_ERROR_CODES, f"{found!r} is not in the spec's error code table"


# ---- teardown ------------------------------------------------------------------------------

def test_teardown_deletes_manifests_then_blobs(client, pulled):
    for manifest in pulled.manifests:
        response = client.delete(f"/v2/{REPO}/manifests/{manifest.digest}")
        assert 200 <= response.status < 300 or response.status == 405, response.body
    for blob in (*pulled.configs, pulled.layer):
        response = client.delete(f"/v2/{REPO}/blobs/{blob.digest}")
        assert 200 <= response.status < 300 or response.status in (404, 405), response.body
    for manifest in pulled.manifests:
        assert client.head(f"/v2/{REPO}/manifests/{manifest.digest}", headers=ACCEPT_OCI).status == 404
    assert client.head(f"/v2/{REPO}/manifests/{TAG}", headers=ACCEPT_OCI).status == 404
    for blob in (*pulled.configs, pulled.layer):
        assert client.head(f"/v2/{REPO}/blobs/{blob.digest}").status == 404
