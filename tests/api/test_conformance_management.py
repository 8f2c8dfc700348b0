"""The OCI conformance "Content Management" workflow: deleting tags, manifests and blobs,
and what the registry answers afterwards (spec.md "Content Management", v1.1), plus
cancelling an upload.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.api.oci_fixtures import (
    ABSENT_DIGEST,
    OCI_MANIFEST,
    Blob,
    Manifest,
    assert_oci_error,
    empty_json_blob,
    image_config,
    image_manifest,
    push_blob,
    push_manifest,
    random_blob,
    relative,
    start_upload,
)

REPO = "conformance/management-workflow"
TAG = "tagtest0"
ACCEPT_OCI = {"Accept": OCI_MANIFEST}


@dataclass
class Managed:
    config: Blob
    layer: Blob
    manifest: Manifest
    tags_before: int


@pytest.fixture
def managed(client) -> Managed:
    config, layer = image_config(), random_blob(200)
    push_blob(client, REPO, config)
    push_blob(client, REPO, layer)
    manifest = image_manifest(config, [layer], embed_config_data=True)
    assert 200 <= push_manifest(client, REPO, TAG, manifest).status < 300
    listing = client.get(f"/v2/{REPO}/tags/list")
    assert listing.status == 200
    return Managed(config, layer, manifest, len(listing.json()["tags"]))


def tags(client) -> list[str]:
    response = client.get(f"/v2/{REPO}/tags/list")
    assert response.status == 200
    return response.json()["tags"]


# ---- manifests and tags --------------------------------------------------------------------

def test_delete_of_tag_is_202_and_the_tag_is_gone(client, managed):
    response = client.delete(f"/v2/{REPO}/manifests/{TAG}")
    assert response.status in (202, 400, 405)
    if response.status == 400:
        assert_oci_error(response, 400, "UNSUPPORTED")
        return
    assert response.status == 202
    assert_oci_error(client.get(f"/v2/{REPO}/manifests/{TAG}", headers=ACCEPT_OCI), 404, "MANIFEST_UNKNOWN")


def test_workflow_delete_tag_then_manifest_then_list(client, managed):
    """The suite's order: delete the tag, then the manifest by digest (202, or 404 if the tag
    delete took it), then GET the manifest (404) and list tags (fewer than before)."""
    assert client.delete(f"/v2/{REPO}/manifests/{TAG}").status == 202
    response = client.delete(f"/v2/{REPO}/manifests/{managed.manifest.digest}")
    assert response.status in (202, 404)
    assert client.get(f"/v2/{REPO}/manifests/{managed.manifest.digest}", headers=ACCEPT_OCI).status == 404
    assert len(tags(client)) < managed.tags_before


def test_delete_of_manifest_by_digest_removes_it_and_its_tags(client, managed):
    for tag in ("also-this", "and-this"):
        assert push_manifest(client, REPO, tag, managed.manifest).status == 201
    response = client.delete(f"/v2/{REPO}/manifests/{managed.manifest.digest}")
    assert response.status == 202
    for reference in (managed.manifest.digest, TAG, "also-this", "and-this"):
        assert client.get(f"/v2/{REPO}/manifests/{reference}", headers=ACCEPT_OCI).status == 404, reference
        assert client.head(f"/v2/{REPO}/manifests/{reference}", headers=ACCEPT_OCI).status == 404, reference
    assert tags(client) == []


def test_delete_of_unknown_manifest_is_404(client, managed):
    assert_oci_error(client.delete(f"/v2/{REPO}/manifests/{ABSENT_DIGEST}"), 404, "MANIFEST_UNKNOWN")
    response = client.delete(f"/v2/{REPO}/manifests/no-such-tag")
    assert response.status == 404


def test_delete_of_manifest_in_unknown_repository_is_404(client):
    """spec.md "Deleting Manifests": if the repository does not exist, 404."""
    assert client.delete(f"/v2/conformance/no-such-repo/manifests/{ABSENT_DIGEST}").status == 404


def test_deleted_manifest_can_be_pushed_again(client, managed):
    assert client.delete(f"/v2/{REPO}/manifests/{managed.manifest.digest}").status == 202
    assert push_manifest(client, REPO, TAG, managed.manifest).status == 201
    response = client.get(f"/v2/{REPO}/manifests/{TAG}", headers=ACCEPT_OCI)
    assert response.status == 200
    assert response.body == managed.manifest.body


def test_deleted_referrer_leaves_the_referrers_list(client, managed):
    empty = empty_json_blob()
    push_blob(client, REPO, empty)
    artifact = image_manifest(empty, [empty], artifact_type="application/vnd.example.sig",
                              subject=managed.manifest, annotations={"org.example.k": "v"})
    assert push_manifest(client, REPO, artifact.digest, artifact).status == 201
    listed = client.get(f"/v2/{REPO}/referrers/{managed.manifest.digest}").json()["manifests"]
    assert [m["digest"] for m in listed] == [artifact.digest]
    assert client.delete(f"/v2/{REPO}/manifests/{artifact.digest}").status == 202
    response = client.get(f"/v2/{REPO}/referrers/{managed.manifest.digest}")
    assert response.status == 200
    assert response.json()["manifests"] == []


# ---- blobs ---------------------------------------------------------------------------------

def test_delete_of_blobs_is_202_then_they_are_404(client, managed):
    assert client.delete(f"/v2/{REPO}/manifests/{managed.manifest.digest}").status == 202
    for blob in (managed.config, managed.layer):
        response = client.delete(f"/v2/{REPO}/blobs/{blob.digest}")
        assert response.status == 202, response.body
        assert_oci_error(client.get(f"/v2/{REPO}/blobs/{blob.digest}"), 404, "BLOB_UNKNOWN")
        assert client.head(f"/v2/{REPO}/blobs/{blob.digest}").status == 404


def test_delete_of_unknown_blob_is_404(client, managed):
    assert_oci_error(client.delete(f"/v2/{REPO}/blobs/{ABSENT_DIGEST}"), 404, "BLOB_UNKNOWN")


def test_blob_delete_in_one_repository_leaves_other_repositories_alone(client, managed):
    other = "conformance/management-other"
    push_blob(client, other, managed.layer)
    assert client.delete(f"/v2/{REPO}/blobs/{managed.layer.digest}").status == 202
    assert client.head(f"/v2/{REPO}/blobs/{managed.layer.digest}").status == 404
    assert client.head(f"/v2/{other}/blobs/{managed.layer.digest}").status == 200


def test_deleted_blob_can_be_pushed_again(client, managed):
    assert client.delete(f"/v2/{REPO}/blobs/{managed.layer.digest}").status == 202
    push_blob(client, REPO, managed.layer)
    assert client.head(f"/v2/{REPO}/blobs/{managed.layer.digest}").status == 200


# ---- uploads -------------------------------------------------------------------------------

def test_cancelled_upload_session_is_gone(client):
    location = start_upload(client, REPO)
    assert client.patch(relative(location), body=b"partial", headers={"Content-Range": "0-6"}).status == 202
    response = client.delete(relative(location), headers={"Content-Length": "0"})
    assert response.status == 204
    assert_oci_error(client.get(relative(location)), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(client.delete(relative(location)), 404, "BLOB_UPLOAD_UNKNOWN")
