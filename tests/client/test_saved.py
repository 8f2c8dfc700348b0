"""`SavedImage`, the `docker-daemon:` and `podman:` sources: an image pushed as its engine saves
it, against the fake registry over HTTP. The engine here serves a `docker save` stream from a
file, in the layouts real engines write: Docker 20.10's (`<id>/layer.tar`, names that say
nothing of the layer, in name order) and Docker 25's (`blobs/sha256/<digest>`). The engines
themselves, podman's layout and memory use: tests/e2e/test_engine_sources.py."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from berth.client import ArchiveSource, ClientError, RegistryClient, SavedImage
from berth.client.engines import EngineImage
from tests.client.fake_registry import FakeRegistry, MiB, digest_of
from tests.client.test_blobs import Counting

REPO = "team/app"


class FileEngine:
    """An engine whose one image is saved as an archive in a file."""

    label = "the test engine"

    def __init__(self, saved: Saved) -> None:
        self.path, self.image, self.saves = saved.path, saved.image, 0

    def inspect(self, name: str) -> EngineImage:
        return self.image

    @contextmanager
    def save(self, image_id: str) -> Iterator[IO[bytes]]:
        assert image_id == self.image.id
        self.saves += 1
        with self.path.open("rb") as stream:
            yield stream


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with FakeRegistry().running() as running:
        yield running


def layers(*sizes: int) -> list[bytes]:
    """Uncompressed layers (as engines save them) of these sizes."""
    return [b"tar:" + os.urandom(size - 4) for size in sizes]


@dataclass
class Saved:
    path: Path  # the archive
    image: EngineImage  # what the engine says of the image
    config: bytes
    layer_names: list[str]  # as manifest.json lists them


def saved(tmp_path: Path, blobs: list[bytes], layout: str, *, altered: dict[int, bytes] | None = None) -> Saved:
    """A `docker save` stream of an image of `blobs` as `layout` writes it (names the same each
    time). `altered` puts other bytes in the stream for some layers than the image has."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [digest_of(b) for b in blobs]}}).encode()
    hexes = [digest_of(b)[7:] for b in (config, *blobs)]
    names = ([f"blobs/sha256/{h}" for h in hexes] if layout == "docker25" else
             [f"{hexes[0]}.json"] + [f"{digest_of(b'v1' + b)[7:]}/layer.tar" for b in blobs])
    members = [(names[0], config)] + [(names[1 + i], (altered or {}).get(i, b)) for i, b in enumerate(blobs)]
    if layout == "docker20":
        members.sort()  # its files come out in name order
    members.append(("manifest.json", json.dumps([{"Config": names[0], "RepoTags": None,
                                                  "Layers": names[1:]}]).encode()))
    path = tmp_path / f"{layout}-{os.urandom(4).hex()}.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return Saved(path, EngineImage(digest_of(config), tuple(digest_of(b) for b in blobs)), config, names[1:])


def push(fake: FakeRegistry, engine: FileEngine, progress: Counting | None = None) -> str:
    repo = RegistryClient(fake.host).repository(REPO, push=True)
    return SavedImage(engine, "app:1").push(repo, "1", progress=progress)


@pytest.mark.parametrize("layout", ["docker20", "docker25"])
def test_an_image_is_pushed_as_its_docker_save_archive_would_be(
        fake: FakeRegistry, tmp_path: Path, layout: str) -> None:
    blobs = layers(3_000, 5 * MiB, 200_000)  # the middle one too large for one request
    image = saved(tmp_path, blobs, layout)
    digest = push(fake, FileEngine(image))
    assert digest == ArchiveSource(image.path).root().digest
    manifest = json.loads(fake.manifests[REPO]["1"][0])
    assert [layer["digest"] for layer in manifest["layers"]] == list(image.image.diff_ids)
    assert {layer["mediaType"] for layer in manifest["layers"]} == {"application/vnd.docker.image.rootfs.diff.tar"}
    assert fake.blobs[REPO] == {digest_of(b): b for b in (image.config, *blobs)}
    assert fake.requests("GET", "/parts"), "the large layer went straight to storage"


@pytest.mark.parametrize("layout", ["docker20", "docker25"])
def test_an_image_the_registry_holds_whole_is_not_even_saved(fake: FakeRegistry, tmp_path: Path,
                                                             layout: str) -> None:
    blobs = layers(3_000, 40_000)
    image = saved(tmp_path, blobs, layout)
    fake.blobs[REPO] = {digest_of(b): b for b in (image.config, *blobs)}
    engine = FileEngine(image)
    assert push(fake, engine) == ArchiveSource(image.path).root().digest
    assert engine.saves == 0
    assert fake.requests("POST") == []


def test_named_layers_the_registry_holds_are_passed_over_unread(fake: FakeRegistry, tmp_path: Path) -> None:
    """Other bytes in the stream than the name says would be refused, were they read."""
    blobs = layers(3_000, 2 * MiB, 40_000)
    image = saved(tmp_path, blobs, "docker25", altered={1: b"tar:" + os.urandom(100)})
    fake.blobs[REPO] = {digest_of(blobs[1]): blobs[1]}
    progress = Counting()
    digest = push(fake, FileEngine(image), progress)
    assert digest == ArchiveSource(saved(tmp_path, blobs, "docker25").path).root().digest
    assert set(progress.outcomes) == {digest_of(b) for b in (image.config, blobs[0], blobs[2])}


def test_docker_20_layers_after_the_last_missing_one_are_passed_over_and_placed_by_diff_id(
        fake: FakeRegistry, tmp_path: Path) -> None:
    """Docker 20.10's layer names say nothing of the layer: once every missing layer has been
    found, the rest are passed over unread (their bytes altered in the stream would otherwise
    show), and manifest.json's order gives their digests."""
    blobs = layers(3_000, 40_000, 50_000, 60_000)
    image = saved(tmp_path, blobs, "docker20")
    missing = image.layer_names.index(min(image.layer_names))  # the first layer in the stream
    altered = {i: b"tar:" + os.urandom(50) for i in range(len(blobs)) if i != missing}
    image = saved(tmp_path, blobs, "docker20", altered=altered)  # the same names
    fake.blobs[REPO] = {digest_of(b): b for i, b in enumerate(blobs) if i != missing}
    progress = Counting()
    digest = push(fake, FileEngine(image), progress)
    assert set(progress.outcomes) == {digest_of(image.config), digest_of(blobs[missing])}
    manifest = json.loads(fake.manifests[REPO][digest][0])
    assert [layer["digest"] for layer in manifest["layers"]] == list(image.image.diff_ids)
    assert [layer["size"] for layer in manifest["layers"]] == [len(b) for b in blobs]


def test_a_layer_holding_other_bytes_than_its_name_says_is_refused(fake: FakeRegistry, tmp_path: Path) -> None:
    image = saved(tmp_path, layers(3_000, 40_000), "docker25", altered={1: b"tar:" + os.urandom(100)})
    with pytest.raises(ClientError, match="holds sha256:"):
        push(fake, FileEngine(image))
    assert REPO not in fake.manifests


def test_a_stream_of_another_image_than_the_engine_described_is_refused(fake: FakeRegistry, tmp_path: Path) -> None:
    """The tag moved between the engine's description and its save."""
    image, other = saved(tmp_path, layers(3_000), "docker25"), saved(tmp_path, layers(3_000), "docker25")
    with pytest.raises(ClientError, match="another image"):
        push(fake, FileEngine(Saved(image.path, other.image, other.config, other.layer_names)))
    assert REPO not in fake.manifests
