"""Random OCI images: in memory for the in-process client, as OCI layouts for skopeo. Layers
are gzip tars of random bytes (tests/e2e/images.py builds them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Layout, layer, sha256

KiB = 1024
MiB = 1024 * KiB
# "Small layers": each goes up in one request with every client.
SMALL_LAYERS = (64 * KiB, 512 * KiB, 2 * MiB)


@dataclass(frozen=True)
class Image:
    layers: tuple[bytes, ...]
    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> tuple[bytes, ...]:
        """In the order skopeo pushes them: layers, then the config."""
        return (*self.layers, self.config)

    @property
    def blob_bytes(self) -> int:
        """What a push stores in S3 (the manifest goes to DynamoDB)."""
        return sum(len(b) for b in self.blobs)


def random_image(layer_sizes: tuple[int, ...] = SMALL_LAYERS) -> Image:
    built = [layer(size) for size in layer_sizes]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in built]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": sha256(blob), "size": len(blob)} for blob, _ in built],
    }).encode()
    return Image(tuple(blob for blob, _ in built), config, manifest)


def random_layout(root: Path, tag: str, layer_sizes: tuple[int, ...] = SMALL_LAYERS) -> int:
    """Write an OCI layout holding one random image tagged `tag`; returns its blob bytes
    (layers and config, not the manifest)."""
    layout = Layout(root)
    descriptor = layout.image(list(layer_sizes))
    layout.tag(descriptor, tag)
    everything = sum(path.stat().st_size for path in (root / "blobs" / "sha256").iterdir())
    return everything - int(descriptor["size"])
