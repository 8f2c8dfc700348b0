"""A single-layer OCI layout on disk whose layer holds `size` random bytes, written a block at
a time so that a GiB layer is never whole in memory. The layer is a tar of one file in a gzip
stream of stored (level 0) blocks: random bytes do not compress, and deflating a GiB would
take most of a minute for nothing."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Layout

BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class BigImage:
    root: Path
    tag: str
    manifest_digest: str
    layer_digest: str
    layer_bytes: int  # the layer blob as stored (tar and gzip framing included)
    blob_bytes: int  # layer and config: what a push stores in S3 (the manifest goes to DynamoDB)

    @property
    def reference(self) -> str:
        return f"oci:{self.root}:{self.tag}"


class _Hashing:
    """A write-only file that hashes and counts what passes through it to `sink`."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        self.sink.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def _write_tar(out: _Hashing, size: int) -> None:
    """A tar of one file of `size` random bytes, as tarfile writes it: header, data padded to
    a block, two zero blocks, padded to a record."""
    info = tarfile.TarInfo(f"data/{os.urandom(4).hex()}.bin")
    info.size = size
    info.mode = 0o644
    out.write(info.tobuf(tarfile.PAX_FORMAT))
    left = size
    while left:
        block = os.urandom(min(BLOCK, left))
        out.write(block)
        left -= len(block)
    out.write(bytes(-size % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE))
    out.write(bytes(-out.size % tarfile.RECORDSIZE))


def _write_layer(blobs: Path, size: int) -> tuple[str, int, str]:
    """The layer into `blobs`, named by its digest; returns (digest, bytes, diff ID)."""
    partial = blobs / "layer.partial"
    with partial.open("wb") as file:
        stored = _Hashing(file)
        with gzip.GzipFile(fileobj=stored, mode="wb", compresslevel=0, mtime=0) as zipped:
            plain = _Hashing(zipped)
            _write_tar(plain, size)
    partial.rename(blobs / stored.digest.removeprefix("sha256:"))
    return stored.digest, stored.size, plain.digest


def big_layout(root: Path, tag: str, size: int) -> BigImage:
    """Write the layout at `root` (a directory that need not exist) and tag its image `tag`."""
    layout = Layout(root)
    digest, layer_bytes, diff_id = _write_layer(root / "blobs" / "sha256", size)
    config = layout.add_blob(json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode(), OCI_CONFIG)
    manifest = layout.add_blob(json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
        "layers": [{"mediaType": OCI_LAYER, "digest": digest, "size": layer_bytes}],
    }).encode(), OCI_MANIFEST)
    layout.tag(manifest, tag)
    return BigImage(root, tag, str(manifest["digest"]), digest, layer_bytes, layer_bytes + int(config["size"]))
