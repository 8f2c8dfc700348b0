"""An image in a registry as a push source: manifests fetched as stored, blobs streamed (a
byte range at a time, so parts and chunks need neither a local copy nor memory)."""

from __future__ import annotations

from typing import BinaryIO

from berth.client.content import Content
from berth.client.manifests import Descriptor, Manifest
from berth.client.registry import Repository

DEFAULT_TAG = "latest"


class RemoteBlob:
    def __init__(self, repo: Repository, digest: str) -> None:
        self.repo, self.digest = repo, digest

    def open(self, offset: int, length: int) -> BinaryIO:
        return self.repo.open_blob(self.digest, offset, length)


class RegistrySource:
    """The image a digest or tag (`latest` when neither is given) names in `repo`. With an
    index, every child comes along."""

    def __init__(self, repo: Repository, tag: str | None = None, digest: str | None = None) -> None:
        self.repo = repo
        self.tag = tag or (None if digest else DEFAULT_TAG)
        self._root = repo.get_manifest(digest or self.tag or DEFAULT_TAG)

    def root(self) -> Manifest:
        return self._root

    def manifest(self, descriptor: Descriptor) -> Manifest:
        return self.repo.get_manifest(descriptor.digest)

    def blob(self, descriptor: Descriptor) -> Content:
        return RemoteBlob(self.repo, descriptor.digest)
