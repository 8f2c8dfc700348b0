"""The OCI conformance "Content Discovery" workflow: listing tags (with `n`/`last`
pagination and `Link`) and listing referrers (with and without the `artifactType` filter).
Rules: spec.md "Listing Tags", "Listing Referrers", "Pushing Manifests with Subject" (v1.1).

The referrers setup mirrors the suite's: two artifacts whose type comes from their config's
mediaType, two whose `artifactType` is set over an empty config, an index artifact, all with
one annotation, all pointing at one subject; plus one artifact whose subject is never pushed.
Some referrers are pushed before their subject, some after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest

from tests.api.oci_fixtures import (
    ABSENT_DIGEST,
    EMPTY_JSON_DIGEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    Manifest,
    assert_oci_error,
    empty_json_blob,
    image_config,
    image_index,
    image_manifest,
    push_blob,
    push_manifest,
    random_blob,
    relative,
)

REPO = "conformance/discovery-workflow"
TAGS = ["test0", "test1", "test2", "test3"]
TYPE_A = "application/vnd.example.peanut.butter"
TYPE_B = "application/vnd.example.strawberry.jam"
TYPE_INDEX = "application/vnd.example.food.stand"
ANNOTATION = "org.example.conformance.test"


def list_tags(client, repo: str = REPO, **params: str | int):
    query = f"?{urlencode(params)}" if params else ""
    return client.get(f"/v2/{repo}/tags/list{query}")


def referrers(client, digest: str, repo: str = REPO, artifact_type: str | None = None):
    query = f"?{urlencode({'artifactType': artifact_type})}" if artifact_type else ""
    return client.get(f"/v2/{repo}/referrers/{digest}{query}")


def referrer_index(response) -> list[dict]:
    assert response.status == 200, (response.status, response.body)
    assert response.header("Content-Type") == OCI_INDEX
    body = response.json()
    assert body.get("schemaVersion") == 2
    assert body.get("mediaType") == OCI_INDEX
    assert isinstance(body.get("manifests"), list)
    return body["manifests"]


# ---- tags ----------------------------------------------------------------------------------

@pytest.fixture
def tagged(client) -> Manifest:
    config, layer = image_config(), random_blob(128)
    push_blob(client, REPO, config)
    push_blob(client, REPO, layer)
    manifest = image_manifest(config, [layer])
    for tag in TAGS:
        response = push_manifest(client, REPO, tag, manifest)
        assert 200 <= response.status < 300, response.body
    return manifest


def test_list_tags_is_200_with_name_and_tags_in_lexical_order(client, tagged):
    response = list_tags(client)
    assert response.status == 200
    body = response.json()
    assert body["name"] == REPO
    assert body["tags"] == sorted(TAGS)


def test_number_of_tags_is_limited_by_n(client, tagged):
    n = len(TAGS) // 2
    response = list_tags(client, n=n)
    assert response.status == 200
    assert len(response.json()["tags"]) == n
    assert response.json()["tags"] == sorted(TAGS)[:n]


def test_last_sets_where_the_list_starts_exclusively(client, tagged):
    n = len(TAGS) // 2
    first_page = list_tags(client, n=n).json()["tags"]
    response = list_tags(client, n=n, last=first_page[-1])
    assert response.status == 200
    page = response.json()["tags"]
    assert 0 < len(page) <= n
    assert first_page[-1] not in page
    assert page == sorted(TAGS)[n:2 * n]


def test_last_without_n(client, tagged):
    response = list_tags(client, last="test1")
    assert response.status == 200
    assert response.json()["tags"] == ["test2", "test3"]


def test_n_zero_gives_an_empty_list_and_no_link(client, tagged):
    response = list_tags(client, n=0)
    assert response.status == 200
    assert response.json()["tags"] == []
    assert response.header("Link") is None


def test_link_header_walks_every_tag_in_order(client, tagged):
    seen: list[str] = []
    response = list_tags(client, n=1)
    for _ in range(len(TAGS) + 2):
        assert response.status == 200
        page = response.json()["tags"]
        assert len(page) <= 1
        seen.extend(page)
        link = response.header("Link")
        if link is None:
            break
        match = re.fullmatch(r'<([^>]+)>;\s*rel="next"', link.strip())
        assert match, f"Link must be RFC 5988 with rel=\"next\": {link!r}"
        response = client.get(relative(match.group(1)))
    assert seen == sorted(TAGS)


def test_tags_are_ordered_case_insensitively(client, tagged):
    """spec.md "Listing Tags": tags MUST be in lexical order, which it defines as
    case-insensitive alphanumeric order."""
    for tag in ("Beta", "alpha", "Gamma", "delta"):
        assert push_manifest(client, REPO, tag, tagged).status == 201
    tags = list_tags(client).json()["tags"]
    assert tags == sorted(tags, key=str.lower)


def test_tags_of_unknown_repository_is_404(client):
    assert_oci_error(list_tags(client, repo="conformance/nobody-home"), 404, "NAME_UNKNOWN")


def test_paginated_tags_of_unknown_repository_is_404(client):
    """end-8b fails with 404 like end-8a: paging parameters do not make a repository exist."""
    assert_oci_error(list_tags(client, repo="conformance/nobody-home", n=10, last="v1"), 404, "NAME_UNKNOWN")


# ---- referrers -----------------------------------------------------------------------------

@dataclass
class ReferrerSetup:
    subject: Manifest
    missing_subject: Manifest
    listed: dict[str, tuple[Manifest, str | None, str]]  # digest -> (manifest, artifactType, annotation)
    orphan: Manifest
    blobs: list[Blob]


@pytest.fixture
def with_referrers(client) -> ReferrerSetup:
    empty = empty_json_blob()
    assert empty.digest == EMPTY_JSON_DIGEST
    ref_blob_a = Blob(b"peanut butter on a bagel", TYPE_A)
    ref_blob_b = Blob(b"strawberry jam on a croissant", TYPE_B)

    config, layer = image_config(), random_blob(128)
    subject = image_manifest(config, [layer])
    missing_subject = image_manifest(image_config(), [layer])  # never pushed

    def config_artifact(blob: Blob, note: str) -> Manifest:
        return image_manifest(blob, [empty], subject=subject, annotations={ANNOTATION: note})

    def layer_artifact(blob: Blob, kind: str, note: str | None, on: Manifest = subject) -> Manifest:
        return image_manifest(empty, [blob], artifact_type=kind, subject=on,
                              annotations={ANNOTATION: note} if note else None)

    a_config = config_artifact(ref_blob_a, "config a")
    a_layer = layer_artifact(ref_blob_a, TYPE_A, "layer a")
    index = image_index([a_config, a_layer], artifact_type=TYPE_INDEX, subject=subject,
                        annotations={ANNOTATION: "index"})
    b_config = config_artifact(ref_blob_b, "config b")
    b_layer = layer_artifact(ref_blob_b, TYPE_B, "layer b")
    orphan = layer_artifact(ref_blob_b, TYPE_B, None, on=missing_subject)

    def put_referrer(manifest: Manifest, expected_subject: Manifest) -> None:
        response = push_manifest(client, REPO, manifest.digest, manifest)
        assert 200 <= response.status < 300, response.body
        assert response.header("OCI-Subject") == expected_subject.digest

    # Referrers pushed before their subject exists.
    push_blob(client, REPO, empty)
    push_blob(client, REPO, ref_blob_a)
    put_referrer(a_config, subject)
    put_referrer(a_layer, subject)
    put_referrer(index, subject)
    # The subject itself.
    push_blob(client, REPO, config)
    push_blob(client, REPO, layer)
    response = push_manifest(client, REPO, "tagtest0", subject)
    assert 200 <= response.status < 300, response.body
    # Referrers pushed after it, and one whose subject never arrives.
    push_blob(client, REPO, ref_blob_b)
    put_referrer(b_config, subject)
    put_referrer(b_layer, subject)
    put_referrer(orphan, missing_subject)

    listed = {
        a_config.digest: (a_config, TYPE_A, "config a"),
        a_layer.digest: (a_layer, TYPE_A, "layer a"),
        index.digest: (index, TYPE_INDEX, "index"),
        b_config.digest: (b_config, TYPE_B, "config b"),
        b_layer.digest: (b_layer, TYPE_B, "layer b"),
    }
    return ReferrerSetup(subject, missing_subject, listed, orphan, [empty, ref_blob_a, ref_blob_b, config, layer])


def assert_descriptor_matches(descriptor: dict, setup: ReferrerSetup) -> None:
    manifest, artifact_type, note = setup.listed[descriptor["digest"]]
    assert descriptor["mediaType"] == manifest.media_type
    assert descriptor["size"] == manifest.size
    assert descriptor.get("artifactType") == artifact_type
    assert descriptor.get("annotations") == {ANNOTATION: note}


def test_referrers_of_unknown_digest_is_an_empty_index(client, with_referrers):
    assert referrer_index(referrers(client, ABSENT_DIGEST)) == []


def test_referrers_lists_every_manifest_with_the_subject(client, with_referrers):
    manifests = referrer_index(referrers(client, with_referrers.subject.digest))
    assert len(manifests) == 5
    assert len({m["digest"] for m in manifests}) == 5
    assert {m["digest"] for m in manifests} == set(with_referrers.listed)
    for descriptor in manifests:
        assert_descriptor_matches(descriptor, with_referrers)


def test_referrers_filtered_by_artifact_type(client, with_referrers):
    response = referrers(client, with_referrers.subject.digest, artifact_type=TYPE_A)
    manifests = referrer_index(response)
    if response.header("OCI-Filters-Applied"):
        assert response.header("OCI-Filters-Applied") == "artifactType"
        assert len(manifests) == 2
        assert all(m["artifactType"] == TYPE_A for m in manifests)
    else:  # the suite tolerates a registry that does not filter (it only warns)
        assert len(manifests) == 5
    for descriptor in manifests:
        assert_descriptor_matches(descriptor, with_referrers)


def test_referrers_filter_that_matches_nothing(client, with_referrers):
    response = referrers(client, with_referrers.subject.digest, artifact_type="application/vnd.example.none")
    manifests = referrer_index(response)
    if response.header("OCI-Filters-Applied"):
        assert manifests == []


def test_referrers_of_a_subject_never_pushed(client, with_referrers):
    manifests = referrer_index(referrers(client, with_referrers.missing_subject.digest))
    assert [m["digest"] for m in manifests] == [with_referrers.orphan.digest]
    assert manifests[0]["artifactType"] == TYPE_B
    assert "annotations" not in manifests[0] or manifests[0]["annotations"] in ({}, None)


def test_referrers_are_scoped_to_the_repository(client, with_referrers):
    assert referrer_index(referrers(client, with_referrers.subject.digest, repo="conformance/elsewhere")) == []


def test_index_referrer_without_artifact_type_omits_it(client, with_referrers):
    """If an index has no artifactType, its descriptor in the referrers list MUST omit it."""
    plain_index = image_index([with_referrers.subject], subject=with_referrers.subject)
    assert push_manifest(client, REPO, plain_index.digest, plain_index).status == 201
    manifests = referrer_index(referrers(client, with_referrers.subject.digest))
    entry = next(m for m in manifests if m["digest"] == plain_index.digest)
    assert entry["mediaType"] == OCI_INDEX
    assert "artifactType" not in entry


def test_referrers_with_invalid_digest_is_400(client):
    assert referrers(client, "sha256:totallywrong").status == 400


def test_referrers_never_answer_404(client):
    assert referrers(client, ABSENT_DIGEST, repo="conformance/never-pushed").status != 404


# ---- teardown ------------------------------------------------------------------------------

def test_teardown_deletes_manifests_tags_and_blobs(client, with_referrers):
    references = [*with_referrers.listed, with_referrers.subject.digest, "tagtest0", with_referrers.orphan.digest]
    for reference in references:
        response = client.delete(f"/v2/{REPO}/manifests/{reference}")
        assert 200 <= response.status < 300 or response.status in (404, 405), (reference, response.body)
    for reference in references:
        assert client.head(f"/v2/{REPO}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}).status == 404
    assert referrer_index(referrers(client, with_referrers.subject.digest)) == []
    for blob in with_referrers.blobs:
        response = client.delete(f"/v2/{REPO}/blobs/{blob.digest}")
        assert 200 <= response.status < 300 or response.status in (404, 405)
        assert client.head(f"/v2/{REPO}/blobs/{blob.digest}").status == 404
