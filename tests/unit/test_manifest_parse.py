import json
from typing import Any

import pytest

from chalicelib.digest.digests import Digest
from chalicelib.errors import Oci, RegistryError
from chalicelib.manifests import mediatypes as mt
from chalicelib.manifests.parse import MAX_MANIFEST_BYTES, parse_manifest

D1 = str(Digest.of(b"1"))
D2 = str(Digest.of(b"2"))


def desc(media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip", digest: str = D1, size: int = 1,
         **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def image(**extra: Any) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
            "config": desc("application/vnd.oci.image.config.v1+json", D2), "layers": [desc()], **extra}


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def refused(doc_or_bytes: Any, content_type: str | None, kind: Oci = Oci.MANIFEST_INVALID) -> str:
    raw = doc_or_bytes if isinstance(doc_or_bytes, bytes) else body(doc_or_bytes)
    with pytest.raises(RegistryError) as caught:
        parse_manifest(raw, content_type)
    assert caught.value.kind is kind
    return caught.value.message


def test_image_manifest_lists_config_and_layers_as_blobs() -> None:
    manifest = parse_manifest(body(image()), mt.OCI_MANIFEST)
    assert manifest.media_type == mt.OCI_MANIFEST
    assert [str(d.digest) for d in manifest.blobs] == [D2, D1]
    assert manifest.children == [] and manifest.subject is None
    assert manifest.referrer_artifact_type() == "application/vnd.oci.image.config.v1+json"


def test_index_lists_children() -> None:
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc(mt.OCI_MANIFEST)]}
    manifest = parse_manifest(body(doc), mt.OCI_INDEX)
    assert [str(d.digest) for d in manifest.children] == [D1] and manifest.blobs == []


def test_docker_types() -> None:
    doc = image(mediaType=mt.DOCKER_MANIFEST)
    assert parse_manifest(body(doc), mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST
    lst = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": [desc(mt.DOCKER_MANIFEST)]}
    assert parse_manifest(body(lst), mt.DOCKER_MANIFEST_LIST).children


def test_artifact_with_subject_and_artifact_type() -> None:
    doc = image(artifactType="application/vnd.example.sbom", subject=desc(mt.OCI_MANIFEST, D2, 10),
                config=desc(mt.EMPTY_CONFIG, D2, 2), annotations={"a": "b"})
    manifest = parse_manifest(body(doc), mt.OCI_MANIFEST)
    assert manifest.subject is not None and str(manifest.subject.digest) == D2
    assert manifest.referrer_artifact_type() == "application/vnd.example.sbom"
    assert manifest.annotations == {"a": "b"}


def test_media_type_inferred_when_neither_body_nor_header_names_it() -> None:
    doc = image()
    del doc["mediaType"]
    assert parse_manifest(body(doc), None).media_type == mt.OCI_MANIFEST
    assert parse_manifest(body(doc), "application/json").media_type == mt.OCI_MANIFEST


def test_foreign_layers_need_not_be_in_the_registry() -> None:
    doc = image(layers=[desc("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", urls=["https://x"])])
    assert [str(d.digest) for d in parse_manifest(body(doc), mt.OCI_MANIFEST).blobs] == [D2]


def test_content_type_must_agree_with_media_type() -> None:
    assert "does not match" in refused(image(), mt.DOCKER_MANIFEST)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"not json", "UTF-8 JSON"),
        (b"\xff\xfe{}", "UTF-8 JSON"),
        (b"[]", "JSON object"),
        (json.dumps(image(schemaVersion=1)).encode(), "schema 1"),
        (json.dumps(image(schemaVersion=3)).encode(), "schemaVersion must be 2"),
        (json.dumps(image(mediaType="application/x-unknown")).encode(), "unsupported manifest media type"),
        (json.dumps(image(layers="x")).encode(), "layers must be a list"),
        (json.dumps(image(config=None)).encode(), "config must be a descriptor"),
        (json.dumps(image(layers=[desc(digest="sha256:zz")])).encode(), "not a valid digest"),
        (json.dumps(image(layers=[desc(size=-1)])).encode(), "size must be a non-negative integer"),
        (json.dumps(image(layers=[desc(size=True)])).encode(), "size must be a non-negative integer"),
        (json.dumps(image(layers=[{"digest": D1, "size": 1}])).encode(), "mediaType must be a non-empty"),
        (json.dumps(image(annotations={"a": 1})).encode(), "annotations must map strings"),
        (json.dumps(image(artifactType=5)).encode(), "artifactType must be a string"),
    ],
)
def test_malformed_manifests_are_refused_with_a_reason(raw: bytes, fragment: str) -> None:
    assert fragment in refused(raw, None)


def test_too_large_is_413() -> None:
    doc = image(annotations={"pad": "x" * MAX_MANIFEST_BYTES})
    refused(doc, mt.OCI_MANIFEST, Oci.TOO_LARGE)
