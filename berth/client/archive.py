"""`docker save` archives as push sources. The image becomes a Docker v2 schema 2 manifest whose
layers are the archive's layer files exactly as stored (gzip or plain tar), read in place from
the archive: nothing is extracted or recompressed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from berth.client.content import Content, FileRange
from berth.client.errors import ClientError
from berth.client.manifests import DOCKER_MANIFEST, Descriptor, Manifest
from berth.client.tarfiles import TarFiles

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class ArchiveSource:
    """The image `tag` names in a `docker save` archive (an entry of a RepoTags list, in full as
    `name:tag` or just its tag), or the only image there when no tag is given."""

    def __init__(self, path: Path, tag: str | None = None) -> None:
        self.path = path
        self._files = TarFiles(path)
        try:
            entries = json.loads(self._files.read("manifest.json"))
        except ValueError as error:
            raise ClientError(f"{path}: manifest.json is not JSON") from error
        entry, self.tag = choose_image(entries, tag, path)
        config_name, layer_names = entry_files(entry, path)
        self._blobs: dict[str, FileRange] = {}
        config = self._add(self._files.range(config_name), DOCKER_CONFIG)
        layers = []
        for name in layer_names:
            layer = self._files.range(name)
            with layer.open(0, min(4, layer.size)) as stream:
                layers.append(self._add(layer, layer_type(stream.read(4), name)))
        self._root = docker_manifest(config, layers)

    def root(self) -> Manifest:
        return self._root

    def manifest(self, descriptor: Descriptor) -> Manifest:
        if descriptor.digest != self._root.digest:
            raise ClientError(f"{self.path} has no manifest {descriptor.digest}")
        return self._root

    def blob(self, descriptor: Descriptor) -> Content:
        try:
            return self._blobs[descriptor.digest]
        except KeyError:
            raise ClientError(f"{self.path} has no blob {descriptor.digest}") from None

    def _add(self, blob: FileRange, media_type: str) -> Descriptor:
        digest = blob.sha256()
        self._blobs[digest] = blob
        return Descriptor(media_type, digest, blob.size)


def docker_manifest(config: Descriptor, layers: list[Descriptor]) -> Manifest:
    """The Docker v2 schema 2 manifest of a saved image: its config, and its layers as stored."""
    doc = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": config.to_json(),
           "layers": [d.to_json() for d in layers]}
    return Manifest(json.dumps(doc, indent=3).encode(), DOCKER_MANIFEST)


def layer_type(magic: bytes, name: str) -> str:
    """A saved layer's media type, told by its first bytes: gzip, or a plain tar."""
    if magic.startswith(_GZIP_MAGIC):
        return DOCKER_LAYER_GZIP
    if magic == _ZSTD_MAGIC:
        raise ClientError(f"{name} is zstd-compressed, which Docker v2 schema 2 manifests cannot name")
    return DOCKER_LAYER


def entry_files(entry: dict[str, Any], where: object) -> tuple[str, list[str]]:
    """The config's and the layers' file names in a manifest.json entry."""
    config, layers = entry.get("Config"), entry.get("Layers", [])
    if not isinstance(config, str):
        raise ClientError(f"{where}: the image in manifest.json names no config")
    if not isinstance(layers, list) or not all(isinstance(name, str) for name in layers):
        raise ClientError(f"{where}: the image in manifest.json lists its layers wrongly")
    return config, layers


def choose_image(entries: Any, tag: str | None, path: object) -> tuple[dict[str, Any], str | None]:
    """The manifest.json entry `tag` names, and the tag to push it as."""
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ClientError(f"{path}: manifest.json lists no images")
    names = [(e, str(t)) for e in entries for t in e.get("RepoTags") or []]
    if tag is None:
        if len(entries) > 1:
            listed = ", ".join(t for _, t in names) or "none"
            raise ClientError(f"{path} holds {len(entries)} images: name one as docker-archive:{path}:TAG "
                              f"(tags: {listed})")
        tags = [t for e, t in names if e is entries[0]]
        return entries[0], tags[0].rpartition(":")[2] if tags else None
    found = [(e, t) for e, t in names if tag in (t, t.rpartition(":")[2])]
    if len({id(e) for e, _ in found}) != 1:
        raise ClientError(f"{path} has {'several images' if found else 'no image'} tagged {tag!r}")
    return found[0][0], found[0][1].rpartition(":")[2]
