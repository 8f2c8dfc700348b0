"""oras-py (the `oras` package) against the local mode, as a Python user would drive it: push
files as an artifact, pull them back, list tags, a manifest config and annotations, a chunked
upload of a blob larger than one request may carry, an artifact attached to another (subject,
then the referrers API), delete."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import oras.client
import oras.defaults
import oras.oci
import pytest

from tests.e2e.images import OCI_INDEX, OCI_MANIFEST
from tests.e2e.test_skopeo import access_lines
from tests.local import LocalServer

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
MAX_BODY = 4_456_448  # OCI-Chunk-Max-Length
TITLE = oras.defaults.annotation_title
UNKNOWN_CONFIG = oras.defaults.unknown_config_media_type


@pytest.fixture
def client(registry: LocalServer) -> oras.client.OrasClient:
    return oras.client.OrasClient(hostname=registry.address, insecure=True)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push(client: oras.client.OrasClient, target: str, files: list[Path], **kwargs: Any) -> str:
    """Pushes and returns the manifest digest the registry answered with."""
    response = client.push(target=target, files=[str(f) for f in files], disable_path_validation=True,
                           quiet=True, **kwargs)
    assert response.status_code == 201, response.text
    return str(response.headers["Docker-Content-Digest"])


def layers_of(manifest: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(layer["digest"], layer["size"], layer["annotations"][TITLE]) for layer in manifest["layers"]]


def test_push_pull_and_list_tags(client: oras.client.OrasClient, registry: LocalServer, tmp_path: Path) -> None:
    notes = write(tmp_path / "in" / "notes.txt", b"release notes\n" * 1000)
    data = write(tmp_path / "in" / "data.bin", os.urandom(300_000))
    target = f"{registry.address}/or/notes"
    digest = push(client, f"{target}:1", [notes, data])
    push(client, f"{target}:2", [notes])

    manifest = client.get_manifest(f"{target}:1")
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"]["mediaType"] == UNKNOWN_CONFIG
    assert layers_of(manifest) == [(digest_of(notes.read_bytes()), notes.stat().st_size, "notes.txt"),
                                   (digest_of(data.read_bytes()), data.stat().st_size, "data.bin")]
    assert client.get_manifest(f"{target}@{digest}") == manifest

    out = tmp_path / "out"
    pulled = client.pull(target=f"{target}:1", outdir=str(out))
    assert sorted(pulled) == sorted([str(out / "notes.txt"), str(out / "data.bin")])
    assert (out / "notes.txt").read_bytes() == notes.read_bytes()
    assert (out / "data.bin").read_bytes() == data.read_bytes()

    assert client.get_tags(target) == ["1", "2"]
    assert client.get_tags(target, N=1) == ["1"]


def test_manifest_config_and_annotations(client: oras.client.OrasClient, registry: LocalServer,
                                         tmp_path: Path) -> None:
    config = write(tmp_path / "config.json", json.dumps({"purpose": "e2e"}).encode())
    blob = write(tmp_path / "model.bin", os.urandom(50_000))
    target = f"{registry.address}/or/configured:1"
    digest = push(client, target, [blob], manifest_config=f"{config}:application/vnd.example.config.v1+json",
                  manifest_annotations={"org.opencontainers.image.description": "an artifact with a config"})

    manifest = client.get_manifest(target)
    assert manifest["config"] == {"mediaType": "application/vnd.example.config.v1+json",
                                  "digest": digest_of(config.read_bytes()), "size": config.stat().st_size}
    assert manifest["annotations"] == {"org.opencontainers.image.description": "an artifact with a config"}
    config_blob = client.get_blob(target, manifest["config"]["digest"])
    assert config_blob.status_code == 200
    assert config_blob.content == config.read_bytes()
    head = client.get_blob(target, digest_of(blob.read_bytes()), head=True)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == blob.stat().st_size
    assert head.headers["Docker-Content-Digest"] == digest_of(blob.read_bytes())
    assert client.get_manifest(f"{registry.address}/or/configured@{digest}") == manifest


def test_chunked_upload_of_a_blob_larger_than_one_request(
        client: oras.client.OrasClient, registry: LocalServer, tmp_path: Path) -> None:
    big = write(tmp_path / "big.bin", os.urandom(12 * MiB))
    target = f"{registry.address}/or/big:1"
    since = len(registry.log())
    push(client, target, [big], do_chunked=True, chunk_size=MAX_BODY)

    requests = access_lines(registry, since, "PUT /v2/or/big/manifests/1")
    patches = [status for method, target_, status in requests
               if method == "PATCH" and target_.startswith("/v2/or/big/blobs/uploads/")]
    assert patches == [202, 202, 202]  # 12 MiB in chunks of at most 4,456,448 bytes
    assert ("PUT", f"digest={digest_of(big.read_bytes())}") in [
        (method, target_.rsplit("?", 1)[-1]) for method, target_, status in requests if status == 201]

    out = tmp_path / "out"
    client.pull(target=target, outdir=str(out))
    assert (out / "big.bin").read_bytes() == big.read_bytes()


def test_attached_artifact_is_listed_as_a_referrer(
        client: oras.client.OrasClient, registry: LocalServer, tmp_path: Path) -> None:
    image = f"{registry.address}/or/signed"
    image_digest = push(client, f"{image}:1", [write(tmp_path / "app.txt", b"app")])
    image_manifest = client.get_manifest(f"{image}:1")
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=image_digest,
                               size=len(json.dumps(image_manifest).encode()))
    assert oras.oci.Subject.from_manifest(image_manifest) == subject  # what oras-py computes itself

    signature = write(tmp_path / "sig.txt", b"signed by e2e")
    response = client.push(target=f"{image}:sig", files=[str(signature)], disable_path_validation=True,
                           quiet=True, subject=subject,
                           manifest_annotations={"org.example.signer": "e2e"})
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == image_digest
    sig_digest = response.headers["Docker-Content-Digest"]
    assert client.get_manifest(f"{image}:sig")["subject"] == {
        "mediaType": OCI_MANIFEST, "digest": image_digest, "size": subject.size}

    # oras-py has no referrers call; its own request helper fetches the listing.
    referrers = client.do_request(f"http://{registry.address}/v2/or/signed/referrers/{image_digest}")
    assert referrers.status_code == 200
    assert referrers.headers["Content-Type"] == OCI_INDEX
    index = referrers.json()
    assert index["mediaType"] == OCI_INDEX
    assert [(m["digest"], m["artifactType"], m["annotations"]) for m in index["manifests"]] == [
        (sig_digest, UNKNOWN_CONFIG, {"org.example.signer": "e2e"})]


def test_delete_tags(client: oras.client.OrasClient, registry: LocalServer, tmp_path: Path) -> None:
    target = f"{registry.address}/or/doomed"
    push(client, f"{target}:keep", [write(tmp_path / "a.txt", b"kept")])
    push(client, f"{target}:drop", [write(tmp_path / "b.txt", b"dropped")])
    assert client.get_tags(target) == ["drop", "keep"]

    assert client.delete_tags(target, ["drop", "missing"]) == ["drop"]
    assert client.get_tags(target) == ["keep"]
    with pytest.raises(ValueError, match="Issue with"):
        client.get_manifest(f"{target}:drop")
    out = tmp_path / "out"
    client.pull(target=f"{target}:keep", outdir=str(out))
    assert (out / "a.txt").read_bytes() == b"kept"
