"""`docker save` archives built in Python, as docker writes them: manifest.json, a config per
image, and layer tars (gzip or plain) under `<id>/layer.tar`, a layer two images share stored
once and linked from the second (or under `blobs/sha256/`, as docker 25+ writes them)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.images import sha256


@dataclass
class Image:
    tag: str  # a RepoTags entry, e.g. "team/app:1"
    layers: list[Path]  # layer files, stored exactly as they are


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def docker_save(path: Path, images: list[Image], blob_paths: bool = False) -> dict[str, bytes]:
    """Writes the archive; returns each image's config by tag."""
    configs, entries, stored = {}, [], {}
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for image in images:
            config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                                 "rootfs": {"type": "layers", "diff_ids": []}, "comment": image.tag}).encode()
            configs[image.tag] = config
            config_name = f"blobs/sha256/{sha256(config)[7:]}" if blob_paths else f"{sha256(config)[7:]}.json"
            _add_bytes(tar, config_name, config)
            names = []
            for layer in image.layers:
                hexdigest = _file_digest(layer)
                name = f"blobs/sha256/{hexdigest}" if blob_paths else f"{hexdigest[:40]}{len(names)}/layer.tar"
                if hexdigest in stored and not blob_paths:
                    link = tarfile.TarInfo(name)
                    link.type, link.linkname = tarfile.SYMTYPE, f"../{stored[hexdigest]}"
                    tar.addfile(link)
                elif hexdigest not in stored:
                    tar.add(layer, arcname=name)
                    stored[hexdigest] = name
                names.append(name)
            entries.append({"Config": config_name, "RepoTags": [image.tag], "Layers": names})
        _add_bytes(tar, "manifest.json", json.dumps(entries).encode())
    return configs
