"""Manifests as the client handles them: exact bytes with a media type, the descriptors they
reference, and the order a push needs (children before the index that names them)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from berth.client.errors import ClientError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
# Layers that live elsewhere (Windows base layers): registries neither need nor take them.
NON_DISTRIBUTABLE = frozenset({
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
})


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    """What a manifest says about something it references."""

    media_type: str
    digest: str
    size: int

    @classmethod
    def from_json(cls, value: Any) -> Descriptor:
        try:
            return cls(str(value["mediaType"]), str(value["digest"]), int(value["size"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ClientError(f"a malformed descriptor in a manifest: {value!r}") from error

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes (its digest is theirs) and media type."""

    data: bytes
    media_type: str

    @cached_property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))

    @cached_property
    def doc(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.data)
        except ValueError as error:
            raise ClientError(f"manifest {self.digest} is not JSON") from error
        if not isinstance(doc, dict):
            raise ClientError(f"manifest {self.digest} is not a JSON object")
        return doc

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEXES

    def children(self) -> list[Descriptor]:
        """The manifests an index names."""
        return [Descriptor.from_json(d) for d in self.doc.get("manifests", [])] if self.is_index else []

    def blobs(self) -> list[Descriptor]:
        """The config and the layers a registry stores for an image manifest."""
        if self.is_index:
            return []
        layers = [Descriptor.from_json(d) for d in self.doc.get("layers", [])]
        return [Descriptor.from_json(self.doc["config"])] + [d for d in layers if d.media_type not in NON_DISTRIBUTABLE]

    @classmethod
    def of(cls, data: bytes, media_type: str | None = None) -> Manifest:
        """A manifest whose media type is `media_type`, else the one its body declares."""
        declared = media_type or _declared_type(data)
        if declared not in MANIFEST_TYPES:
            raise ClientError(f"unsupported manifest media type {declared!r}")
        return cls(data, declared)


def _declared_type(data: bytes) -> str | None:
    try:
        doc = json.loads(data)
    except ValueError as error:
        raise ClientError("a manifest is not JSON") from error
    declared = doc.get("mediaType") if isinstance(doc, dict) else None
    if declared is None and isinstance(doc, dict):
        # OCI allows omitting mediaType: tell by shape.
        declared = OCI_INDEX if "manifests" in doc else OCI_MANIFEST if "config" in doc else None
    return declared if isinstance(declared, str) else None


@dataclass
class Plan:
    """Everything under a root manifest: manifests children first (the root last), and each
    distinct blob once."""

    manifests: list[Manifest]
    blobs: list[Descriptor]

    @property
    def root(self) -> Manifest:
        return self.manifests[-1]


def walk(root: Manifest, fetch: Callable[[Descriptor], Manifest]) -> Plan:
    """The plan for `root`, reading the manifests an index names with `fetch` (which must
    return exactly the bytes the descriptor names)."""
    manifests: dict[str, Manifest] = {}
    blobs: dict[str, Descriptor] = {}

    def visit(manifest: Manifest) -> None:
        for child in manifest.children():
            if child.digest not in manifests:
                fetched = fetch(child)
                if fetched.digest != child.digest:
                    raise ClientError(f"manifest {child.digest} has the digest {fetched.digest}")
                visit(fetched)
        for blob in manifest.blobs():
            blobs.setdefault(blob.digest, blob)
        manifests.setdefault(manifest.digest, manifest)

    visit(root)
    return Plan(list(manifests.values()), list(blobs.values()))
