"""Manifests through the handler: validation against the repository, storage, negotiation,
deletes, and what a pull costs in AWS calls."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from chalicelib.manifests import mediatypes as mt
from chalicelib.manifests.service import INLINE_LIMIT
from tests.helpers import AwsCallCounter, bucket_keys, digest_of, manifest_body

REPO = "team/app"
CONFIG = b"{}"


def push_blob(client: Any, repo: str, data: bytes) -> str:
    response = client.post(f"/v2/{repo}/blobs/uploads/?digest={digest_of(data)}", body=data)
    assert response.status == 201
    return digest_of(data)


def push_image(client: Any, repo: str = REPO, tag: str = "latest", **extra: Any) -> tuple[str, bytes]:
    layer = os.urandom(100)
    body = manifest_body(push_blob(client, repo, CONFIG), [(push_blob(client, repo, layer), 100)], **extra)
    response = client.put(f"/v2/{repo}/manifests/{tag}", body=body, headers={"Content-Type": mt.OCI_MANIFEST})
    assert response.status == 201, response.body
    return response.header("Docker-Content-Digest"), body


def error_code(response: Any) -> str:
    return response.json()["errors"][0]["code"]


def test_put_then_get_by_tag_and_digest_byte_for_byte(client: Any) -> None:
    digest, body = push_image(client)
    assert digest == digest_of(body)
    for reference in ("latest", digest):
        response = client.get(f"/v2/{REPO}/manifests/{reference}", headers={"Accept": mt.OCI_MANIFEST})
        assert response.status == 200
        assert response.body == body
        assert response.header("Content-Type") == mt.OCI_MANIFEST
        assert response.header("Docker-Content-Digest") == digest
        head = client.head(f"/v2/{REPO}/manifests/{reference}")
        assert head.status == 200 and head.body == b""
        assert head.header("Content-Length") == str(len(body))


def test_pull_by_tag_and_blob_reads_are_one_dynamodb_read_each(client: Any, aws: Any) -> None:
    digest, body = push_image(client)
    layer = json.loads(body)["layers"][0]["digest"]
    counter = AwsCallCounter(aws.dynamodb, aws.s3)
    assert counter.during(lambda: client.get(f"/v2/{REPO}/manifests/latest")) == ["dynamodb.GetItem"]
    assert counter.during(lambda: client.head(f"/v2/{REPO}/manifests/{digest}")) == ["dynamodb.GetItem"]
    assert counter.during(lambda: client.get(f"/v2/{REPO}/blobs/{layer}")) == ["dynamodb.GetItem"]
    assert counter.during(lambda: client.head(f"/v2/{REPO}/blobs/{layer}")) == ["dynamodb.GetItem"]


def test_missing_layer_is_manifest_blob_unknown(client: Any) -> None:
    config = push_blob(client, REPO, CONFIG)
    absent = digest_of(b"never pushed")
    body = manifest_body(config, [(absent, 12)])
    response = client.put(f"/v2/{REPO}/manifests/v1", body=body, headers={"Content-Type": mt.OCI_MANIFEST})
    assert response.status == 400
    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"
    assert response.json()["errors"][0]["detail"] == {"digests": [absent]}
    assert client.get(f"/v2/{REPO}/manifests/v1").status == 404


def test_blob_in_another_repository_does_not_count(client: Any) -> None:
    layer = push_blob(client, "elsewhere/repo", b"layer")
    body = manifest_body(push_blob(client, REPO, CONFIG), [(layer, 5)])
    response = client.put(f"/v2/{REPO}/manifests/v1", body=body, headers={"Content-Type": mt.OCI_MANIFEST})
    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"


def test_index_needs_its_children_in_the_repository(client: Any) -> None:
    child, child_body = push_image(client, tag="amd64")
    missing = digest_of(b"not a manifest here")
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": child, "size": len(child_body),
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": mt.OCI_MANIFEST, "digest": missing, "size": 10}]}
    response = client.put(f"/v2/{REPO}/manifests/multi", body=json.dumps(index).encode(),
                          headers={"Content-Type": mt.OCI_INDEX})
    assert response.status == 400 and error_code(response) == "MANIFEST_BLOB_UNKNOWN"
    index["manifests"] = index["manifests"][:1]
    body = json.dumps(index).encode()
    response = client.put(f"/v2/{REPO}/manifests/multi", body=body, headers={"Content-Type": mt.OCI_INDEX})
    assert response.status == 201
    assert client.get(f"/v2/{REPO}/manifests/multi").body == body


def test_put_by_digest_must_match_the_body(client: Any) -> None:
    _, body = push_image(client)
    wrong = digest_of(b"other")
    response = client.put(f"/v2/{REPO}/manifests/{wrong}", body=body, headers={"Content-Type": mt.OCI_MANIFEST})
    assert response.status == 400 and error_code(response) == "DIGEST_INVALID"
    right = client.put(f"/v2/{REPO}/manifests/{digest_of(body)}", body=body, headers={"Content-Type": mt.OCI_MANIFEST})
    assert right.status == 201
    assert right.header("Location") == f"/v2/{REPO}/manifests/{digest_of(body)}"


@pytest.mark.parametrize(
    "body, content_type, code",
    [
        (b"{not json", mt.OCI_MANIFEST, "MANIFEST_INVALID"),
        (b'{"schemaVersion": 1, "name": "x"}', "application/vnd.docker.distribution.manifest.v1+prettyjws",
         "MANIFEST_INVALID"),
        (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}',
         mt.OCI_MANIFEST, "MANIFEST_INVALID"),
        (b"[" * 100_000 + b"]" * 100_000, mt.OCI_MANIFEST, "MANIFEST_INVALID"),  # deeper than json can go
        (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "artifactType": '
         b'"\\ud800", "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": '
         b'"sha256:' + b"a" * 64 + b'"}, "layers": []}', mt.OCI_MANIFEST, "MANIFEST_INVALID"),  # half a surrogate
    ],
)
def test_invalid_manifests(client: Any, body: bytes, content_type: str, code: str) -> None:
    response = client.put(f"/v2/{REPO}/manifests/v1", body=body, headers={"Content-Type": content_type})
    assert response.status == 400 and error_code(response) == code


@pytest.mark.parametrize("tag", ["-bad", "good%0A"], ids=["leading-dash", "trailing-newline"])
def test_bad_tag_is_tag_invalid(client: Any, tag: str) -> None:
    _, body = push_image(client)
    response = client.put(f"/v2/{REPO}/manifests/{tag}", body=body, headers={"Content-Type": mt.OCI_MANIFEST})
    assert response.status == 400 and error_code(response) == "MANIFEST_INVALID"
    assert "tag" in response.json()["errors"][0]["message"]


def test_large_manifest_lives_in_s3_and_round_trips(client: Any, aws: Any, bucket: str) -> None:
    digest, body = push_image(client, tag="big", annotations={"pad": "x" * (INLINE_LIMIT + 10)})
    prefix = f"manifests/sha256/{digest.split(':')[1]}."  # unique per push: see lifecycle tests
    assert [k for k in bucket_keys(aws, bucket) if k.startswith(prefix)]
    assert client.get(f"/v2/{REPO}/manifests/big").body == body
    assert client.get(f"/v2/{REPO}/manifests/{digest}").body == body


def test_accept_negotiation(client: Any) -> None:
    push_image(client)
    refused = client.get(f"/v2/{REPO}/manifests/latest", headers={"Accept": mt.DOCKER_MANIFEST})
    assert refused.status == 404 and error_code(refused) == "MANIFEST_UNKNOWN"
    # Clients send several Accept headers; any one naming the type is enough.
    several = [("Accept", mt.DOCKER_MANIFEST), ("Accept", f"{mt.OCI_MANIFEST}, {mt.OCI_INDEX}")]
    assert client.get(f"/v2/{REPO}/manifests/latest", headers=several).status == 200
    assert client.get(f"/v2/{REPO}/manifests/latest", headers={"Accept": "*/*"}).status == 200


def test_retag_points_at_the_new_manifest(client: Any) -> None:
    first, _ = push_image(client)
    second, body = push_image(client)
    assert first != second
    assert client.get(f"/v2/{REPO}/manifests/latest").body == body
    assert client.get(f"/v2/{REPO}/manifests/{first}").status == 200


def test_delete_by_tag_keeps_the_manifest(client: Any) -> None:
    digest, _ = push_image(client)
    assert client.delete(f"/v2/{REPO}/manifests/latest").status == 202
    assert client.get(f"/v2/{REPO}/manifests/latest").status == 404
    assert client.get(f"/v2/{REPO}/manifests/{digest}").status == 200
    assert client.delete(f"/v2/{REPO}/manifests/latest").status == 404


def test_delete_by_digest_removes_its_tags_and_referrer_entry(client: Any) -> None:
    digest, body = push_image(client, tag="a")
    client.put(f"/v2/{REPO}/manifests/b", body=body, headers={"Content-Type": mt.OCI_MANIFEST})
    other, _ = push_image(client, tag="c")
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": other, "size": 1}
    referrer, _ = push_image(client, tag="sig", subject=subject, artifactType="application/vnd.example.sig")
    assert client.delete(f"/v2/{REPO}/manifests/{digest}").status == 202
    for reference in ("a", "b", digest):
        assert client.get(f"/v2/{REPO}/manifests/{reference}").status == 404
    assert client.get(f"/v2/{REPO}/tags/list").json()["tags"] == ["c", "sig"]
    assert client.delete(f"/v2/{REPO}/manifests/{referrer}").status == 202
    assert client.get(f"/v2/{REPO}/referrers/{other}").json()["manifests"] == []
    assert client.delete(f"/v2/{REPO}/manifests/{digest}").status == 404


def test_subject_and_referrers(client: Any) -> None:
    subject_digest, subject_body = push_image(client)
    subject = {"mediaType": mt.OCI_MANIFEST, "digest": subject_digest, "size": len(subject_body)}
    body = manifest_body(push_blob(client, REPO, CONFIG), [(push_blob(client, REPO, b"sig"), 3)],
                         artifactType="application/vnd.example.sig", subject=subject, annotations={"k": "v", "": "é"})
    response = client.put(f"/v2/{REPO}/manifests/{digest_of(body)}", body=body,
                          headers={"Content-Type": mt.OCI_MANIFEST})
    assert response.status == 201
    assert response.header("OCI-Subject") == subject_digest
    listing = client.get(f"/v2/{REPO}/referrers/{subject_digest}")
    assert listing.status == 200 and listing.header("Content-Type") == mt.OCI_INDEX
    assert listing.json() == {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": digest_of(body), "size": len(body),
         "artifactType": "application/vnd.example.sig", "annotations": {"k": "v", "": "é"}}]}
    assert listing.header("OCI-Filters-Applied") is None
    filtered = client.get(f"/v2/{REPO}/referrers/{subject_digest}?artifactType=application/other")
    assert filtered.json()["manifests"] == []
    assert filtered.header("OCI-Filters-Applied") == "artifactType"
    assert client.get(f"/v2/{REPO}/referrers/sha256:bad").status == 400


def test_tags_and_catalog_paginate_in_lexical_order(client: Any) -> None:
    _, body = push_image(client, tag="b")
    for tag in ("a", "c", "B", "d"):
        client.put(f"/v2/{REPO}/manifests/{tag}", body=body, headers={"Content-Type": mt.OCI_MANIFEST})
    everything = client.get(f"/v2/{REPO}/tags/list")
    # The spec's lexical order is case-insensitive.
    assert everything.json() == {"name": REPO, "tags": ["a", "B", "b", "c", "d"]}
    assert everything.header("Link") is None
    first = client.get(f"/v2/{REPO}/tags/list?n=2")
    assert first.json()["tags"] == ["a", "B"]
    assert first.header("Link") == f'</v2/{REPO}/tags/list?n=2&last=B>; rel="next"'
    assert client.get(f"/v2/{REPO}/tags/list?n=2&last=B").json()["tags"] == ["b", "c"]
    assert client.get(f"/v2/{REPO}/tags/list?n=2&last=c").json()["tags"] == ["d"]
    assert client.get(f"/v2/{REPO}/tags/list?n=0").json()["tags"] == []
    assert client.get(f"/v2/{REPO}/tags/list?n=-1").status == 400
    for repo in ("z/last", "a/first"):
        push_image(client, repo=repo)
    assert client.get("/v2/_catalog").json() == {"repositories": ["a/first", REPO, "z/last"]}
    page = client.get("/v2/_catalog?n=1&last=a/first")
    assert page.json() == {"repositories": [REPO]}
    assert page.header("Link") == '</v2/_catalog?n=1&last=team%2Fapp>; rel="next"'


def test_tags_of_an_unknown_repository(client: Any) -> None:
    response = client.get("/v2/no/such/tags/list")
    assert response.status == 404 and error_code(response) == "NAME_UNKNOWN"


def test_annotations_that_would_outgrow_an_item_are_refused_or_stored_whole(client: Any) -> None:
    """Each item holding a manifest's annotations stops at DynamoDB's 400 KB: a manifest whose
    annotations cannot be indexed is refused with an OCI error, never a 500, and one that fits
    is stored (its body in S3 when body and annotations together would not fit an item)."""
    config = push_blob(client, REPO, b"{}")
    too_many = manifest_body(config, [], annotations={"note": "é" * 70_000})  # 420 KB as stored
    refused = client.put(f"/v2/{REPO}/manifests/big", body=too_many, headers={"Content-Type": mt.OCI_MANIFEST})
    assert refused.status == 400 and error_code(refused) == "MANIFEST_INVALID", refused.body
    assert client.get(f"/v2/{REPO}/manifests/big", headers={"Accept": mt.OCI_MANIFEST}).status == 404
    fits = manifest_body(config, [], annotations={"note": "é" * 20_000, "pad": "x" * 150_000})
    stored = client.put(f"/v2/{REPO}/manifests/fits", body=fits, headers={"Content-Type": mt.OCI_MANIFEST})
    assert stored.status == 201, stored.body
    served = client.get(f"/v2/{REPO}/manifests/fits", headers={"Accept": mt.OCI_MANIFEST})
    assert served.status == 200 and served.body == fits
