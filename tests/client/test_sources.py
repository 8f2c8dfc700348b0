"""Push sources read from disk: OCI layouts (directories, and tars of them) and `docker save`
archives (converted to Docker v2 schema 2 manifests, layers exactly as stored), and how a source
argument picks one."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from berth.client import (
    ArchiveSource,
    ClientError,
    Content,
    LayoutSource,
    LayoutWriter,
    Manifest,
    OciArchiveSource,
    open_source,
    walk,
)
from berth.client.archive import DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP
from berth.client.manifests import DOCKER_MANIFEST, NON_DISTRIBUTABLE, OCI_INDEX, OCI_MANIFEST, Descriptor
from berth.client.sources import split_path
from tests.client.archives import Image, docker_save
from tests.e2e.images import Layout, layer, sha256


def read(content: Content, size: int) -> bytes:
    with content.open(0, size) as stream:
        return stream.read(size)


def layer_files(tmp_path: Path) -> tuple[Path, Path]:
    gzipped, _ = layer(50_000)
    (tmp_path / "a.tar.gz").write_bytes(gzipped)
    (tmp_path / "b.tar").write_bytes(gzip.decompress(layer(30_000)[0]))
    return tmp_path / "a.tar.gz", tmp_path / "b.tar"


def test_a_layout_image_is_found_by_tag(tmp_path: Path) -> None:
    src = Layout(tmp_path / "src")
    one, two = src.image([1000]), src.image([2000])
    src.tag(one, "1")
    src.tag(two, "2")
    source = LayoutSource(src.root, "2")
    assert source.root().digest == two["digest"]
    assert source.tag == "2"
    config = source.root().blobs()[0]
    assert sha256(read(source.blob(config), config.size)) == config.digest


def test_a_layout_with_one_image_needs_no_tag_and_with_several_names_them(tmp_path: Path) -> None:
    src = Layout(tmp_path / "src")
    src.tag(src.image([1000]), "only")
    assert LayoutSource(src.root).tag == "only"
    src.tag(src.image([1000]), "other")
    with pytest.raises(ClientError, match="holds 2 images.*only, other"):
        LayoutSource(src.root)
    with pytest.raises(ClientError, match="no image tagged 'x'"):
        LayoutSource(src.root, "x")


def test_a_layout_missing_a_blob_says_which(tmp_path: Path) -> None:
    src = Layout(tmp_path / "src")
    manifest = src.image([1000])
    src.tag(manifest, "1")
    source = LayoutSource(src.root, "1")
    layer_descriptor = source.root().blobs()[1]
    (src.root / "blobs" / "sha256" / layer_descriptor.digest[7:]).unlink()
    with pytest.raises(ClientError, match=f"lacks blob {layer_descriptor.digest}"):
        source.blob(layer_descriptor)


def tar_of(root: Path, path: Path, prefix: str = "") -> Path:
    """The layout as `skopeo copy ... oci-archive:` writes it: its files at the top of a tar."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(p.relative_to(root).as_posix() for p in root.rglob("*")):
            tar.add(root / name, arcname=prefix + name, recursive=False)
    return path


@pytest.mark.parametrize("prefix", ["", "./"])
def test_an_oci_archive_is_read_in_place_as_its_layout_is(tmp_path: Path, prefix: str) -> None:
    src = Layout(tmp_path / "src")
    amd64, arm64 = src.image([1000, 5000]), src.image([2000], "arm64")
    src.tag(amd64, "1")
    src.tag(src.index([amd64, arm64]), "multi")
    archive = tar_of(src.root, tmp_path / "image.tar", prefix)
    for tag in ("1", "multi"):
        source, layout = OciArchiveSource(archive, tag), LayoutSource(src.root, tag)
        assert source.root() == layout.root() and source.tag == tag
        plan = walk(source.root(), source.manifest)
        assert plan == walk(layout.root(), layout.manifest)
        for blob in plan.blobs:
            assert read(source.blob(blob), blob.size) == read(layout.blob(blob), blob.size)
    with pytest.raises(ClientError, match=f"holds 2 images: name one as oci-archive:{archive}:TAG"):
        OciArchiveSource(archive)
    with pytest.raises(ClientError, match="no image tagged 'x'"):
        OciArchiveSource(archive, "x")


def test_an_oci_archive_missing_a_blob_or_its_index_says_so(tmp_path: Path) -> None:
    src = Layout(tmp_path / "src")
    manifest = src.image([1000])
    src.tag(manifest, "1")
    layer_descriptor = LayoutSource(src.root, "1").root().blobs()[1]
    (src.root / "blobs" / "sha256" / layer_descriptor.digest[7:]).unlink()
    source = OciArchiveSource(tar_of(src.root, tmp_path / "image.tar"), "1")
    with pytest.raises(ClientError, match=f"lacks blob {layer_descriptor.digest}"):
        source.blob(layer_descriptor)
    (src.root / "index.json").unlink()
    with pytest.raises(ClientError, match="not an OCI image layout"):
        OciArchiveSource(tar_of(src.root, tmp_path / "no-index.tar"))


def test_a_docker_archive_becomes_a_schema_2_manifest_of_the_files_as_stored(tmp_path: Path) -> None:
    gzipped, plain = layer_files(tmp_path)
    configs = docker_save(tmp_path / "image.tar", [Image("team/app:1", [gzipped, plain])])
    source = ArchiveSource(tmp_path / "image.tar")
    root = source.root()
    assert root.media_type == DOCKER_MANIFEST
    assert json.loads(root.data)["mediaType"] == DOCKER_MANIFEST
    config, *layers = root.blobs()
    assert config == Descriptor(DOCKER_CONFIG, sha256(configs["team/app:1"]), len(configs["team/app:1"]))
    assert layers == [Descriptor(DOCKER_LAYER_GZIP, sha256(gzipped.read_bytes()), gzipped.stat().st_size),
                      Descriptor(DOCKER_LAYER, sha256(plain.read_bytes()), plain.stat().st_size)]
    assert read(source.blob(layers[1]), layers[1].size) == plain.read_bytes()
    assert source.tag == "1"


def test_a_layer_shared_between_images_is_read_through_its_link(tmp_path: Path) -> None:
    gzipped, plain = layer_files(tmp_path)
    docker_save(tmp_path / "image.tar", [Image("team/a:1", [gzipped]), Image("team/b:2", [plain, gzipped])])
    with tarfile.open(tmp_path / "image.tar") as tar:
        assert any(m.issym() for m in tar.getmembers()), "the builder links the shared layer"
    source = ArchiveSource(tmp_path / "image.tar", "team/b:2")
    shared = source.root().blobs()[2]
    assert read(source.blob(shared), shared.size) == gzipped.read_bytes()
    assert ArchiveSource(tmp_path / "image.tar", "1").root().blobs()[1] == shared
    with pytest.raises(ClientError, match="holds 2 images.*team/a:1, team/b:2"):
        ArchiveSource(tmp_path / "image.tar")


def test_a_docker_25_archive_with_blob_paths_reads_alike(tmp_path: Path) -> None:
    gzipped, plain = layer_files(tmp_path)
    docker_save(tmp_path / "old.tar", [Image("app:1", [gzipped, plain])])
    docker_save(tmp_path / "new.tar", [Image("app:1", [gzipped, plain])], blob_paths=True)
    assert ArchiveSource(tmp_path / "new.tar").root() == ArchiveSource(tmp_path / "old.tar").root()


def test_archives_that_cannot_be_read_in_place_are_refused(tmp_path: Path) -> None:
    gzipped, _ = layer_files(tmp_path)
    docker_save(tmp_path / "image.tar", [Image("app:1", [gzipped])])
    (tmp_path / "image.tar.gz").write_bytes(gzip.compress((tmp_path / "image.tar").read_bytes()))
    with pytest.raises(ClientError, match="not an uncompressed tar"):
        ArchiveSource(tmp_path / "image.tar.gz")
    (tmp_path / "z.tar").write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(100))
    docker_save(tmp_path / "zstd.tar", [Image("app:1", [tmp_path / "z.tar"])])
    with pytest.raises(ClientError, match="zstd"):
        ArchiveSource(tmp_path / "zstd.tar")


def test_source_arguments_choose_the_kind_and_split_off_the_tag(tmp_path: Path) -> None:
    src = Layout(tmp_path / "lay:out")
    src.tag(src.image([1000]), "v1")
    gzipped, _ = layer_files(tmp_path)
    docker_save(tmp_path / "image.tar", [Image("app:1", [gzipped])])
    assert split_path(f"{tmp_path}/lay:out:v1") == (tmp_path / "lay:out", "v1")
    assert split_path(f"{tmp_path}/lay:out") == (tmp_path / "lay:out", None)
    assert isinstance(open_source(f"oci:{tmp_path}/lay:out:v1"), LayoutSource)
    assert isinstance(open_source(f"{tmp_path}/lay:out"), LayoutSource)
    assert isinstance(open_source(f"docker-archive:{tmp_path}/image.tar:app:1"), ArchiveSource)
    assert isinstance(open_source(f"{tmp_path}/image.tar"), ArchiveSource)
    tar_of(tmp_path / "lay:out", tmp_path / "oci.tar")
    assert isinstance(open_source(f"oci-archive:{tmp_path}/oci.tar:v1"), OciArchiveSource)
    assert isinstance(open_source(f"{tmp_path}/oci.tar:v1"), OciArchiveSource)  # no manifest.json in it
    with pytest.raises(ClientError, match="no such file or directory"):
        open_source(f"{tmp_path}/nothing:1")


def test_a_nested_index_is_walked_children_first(tmp_path: Path) -> None:
    src = Layout(tmp_path / "src")
    amd, arm = src.image([1000], "amd64"), src.image([2000], "arm64")
    inner = src.index([amd, arm])
    outer = src.index([{**inner, "mediaType": OCI_INDEX}, amd])
    src.tag(outer, "1")
    source = LayoutSource(src.root, "1")
    plan = walk(source.root(), source.manifest)
    assert [m.digest for m in plan.manifests] == [amd["digest"], arm["digest"], inner["digest"], outer["digest"]]
    assert len(plan.blobs) == len({b.digest for b in plan.blobs}) == 4  # two configs, two layers
    assert hashlib.sha256(plan.root.data).hexdigest() == outer["digest"][7:]


def test_layers_that_live_elsewhere_are_not_blobs_to_copy() -> None:
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "c" * 64, "size": 2}
    foreign = {"mediaType": sorted(NON_DISTRIBUTABLE)[0], "digest": "sha256:" + "f" * 64, "size": 9,
               "urls": ["https://example.com/layer"]}
    doc = {"schemaVersion": 2, "config": config, "layers": [foreign]}
    manifest = Manifest.of(json.dumps(doc).encode())
    assert manifest.media_type == OCI_MANIFEST  # told by shape: no mediaType in the body
    assert [b.digest for b in manifest.blobs()] == [config["digest"]]


def test_a_layout_written_twice_under_one_tag_lists_it_once(tmp_path: Path) -> None:
    writer = LayoutWriter(tmp_path / "out")
    one = Manifest.of(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode())
    two = Manifest.of(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "x": 1}).encode())
    for manifest, tag in ((one, "1"), (one, None), (two, "1"), (one, None)):
        writer.add_manifest(manifest)
        writer.name(manifest.descriptor, tag)
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert [(e["digest"], e.get("annotations")) for e in index["manifests"]] == [
        (two.digest, {"org.opencontainers.image.ref.name": "1"}), (one.digest, None)]
    assert LayoutSource(tmp_path / "out", "1").root() == two


@pytest.mark.parametrize("text", ["docker-daemon:", "docker-daemon:../../containers/json", "podman:-rm",
                                  "containers-storage:[vfs@/tmp]app", "docker-daemon:app/../x", "podman:a b"])
def test_engine_sources_take_an_image_name_and_nothing_else(text: str) -> None:
    with pytest.raises(ClientError, match="name an image"):
        open_source(text)
