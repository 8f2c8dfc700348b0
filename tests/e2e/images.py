"""OCI image layouts built in Python for the end-to-end tests: random tar.gz layers, a config,
manifests (and an index over several), index.json and oci-layout. No network, no daemon."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"

Descriptor = dict[str, Any]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(size: int) -> tuple[bytes, str]:
    """A gzip tar holding `size` random bytes, and its diff ID (digest of the plain tar)."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"data/{os.urandom(4).hex()}.bin")
        info.size = size
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    plain = tar_bytes.getvalue()
    return gzip.compress(plain, mtime=0), sha256(plain)


class Layout:
    """An OCI image layout directory being written."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self._refs: list[Descriptor] = []
        self._write_index()

    def _write_index(self) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self._refs}
        (self.root / "index.json").write_text(json.dumps(index))

    def add_blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = sha256(data)
        (self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, layer_sizes: list[int], arch: str = "amd64") -> Descriptor:
        layers, diff_ids = [], []
        for size in layer_sizes:
            blob, diff_id = layer(size)
            layers.append(self.add_blob(blob, OCI_LAYER))
            diff_ids.append(diff_id)
        config = {"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/true"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": self.add_blob(json.dumps(config).encode(), OCI_CONFIG), "layers": layers}
        descriptor = self.add_blob(json.dumps(manifest).encode(), OCI_MANIFEST)
        return {**descriptor, "platform": {"architecture": arch, "os": "linux"}}

    def index(self, manifests: list[Descriptor]) -> Descriptor:
        return self.add_blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                         "manifests": manifests}).encode(), OCI_INDEX)

    def tag(self, descriptor: Descriptor, name: str) -> None:
        ref = {k: v for k, v in descriptor.items() if k != "platform"}
        self._refs.append({**ref, "annotations": {REF_NAME: name}})
        self._write_index()


def tagged(root: Path, name: str) -> Descriptor:
    """The descriptor index.json of a layout names `name`."""
    index = json.loads((root / "index.json").read_text())
    return next(d for d in index["manifests"] if d.get("annotations", {}).get(REF_NAME) == name)


def blobs(root: Path) -> dict[str, bytes]:
    """Every blob of a layout by digest, each checked against its file name."""
    found = {}
    for path in (root / "blobs" / "sha256").iterdir():
        data = path.read_bytes()
        assert sha256(data) == f"sha256:{path.name}", f"{path} does not match its digest"
        found[f"sha256:{path.name}"] = data
    return found
