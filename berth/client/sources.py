"""What `berth push` reads: the `Source` protocol and `open_source`, which turns a source
argument into one (an OCI layout as a directory or a tar, a `docker save` archive, or an image
in a registry), or into a `SavedImage`: an image in a local engine, pushed as it streams out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from berth.client.archive import ArchiveSource
from berth.client.auth import Credentials
from berth.client.content import Content
from berth.client.engines import DockerEngine, Podman
from berth.client.errors import ClientError
from berth.client.layout import LayoutSource, OciArchiveSource
from berth.client.manifests import Descriptor, Manifest
from berth.client.reference import parse_reference
from berth.client.registry import RegistryClient
from berth.client.remote import RegistrySource
from berth.client.saved import SavedImage
from berth.client.tarfiles import TarFiles

_ENGINE_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}\Z")


class Source(Protocol):
    """An image to push: its root manifest, and the manifests and blobs under it."""

    tag: str | None  # the tag the source names the image by, if any (a default for the destination)

    def root(self) -> Manifest: ...

    def manifest(self, descriptor: Descriptor) -> Manifest:
        """A manifest the root (an index) names."""
        ...

    def blob(self, descriptor: Descriptor) -> Content:
        """A config or layer some manifest names."""
        ...


def split_path(text: str) -> tuple[Path, str | None]:
    """`PATH[:TAG]`: the longest prefix that exists is the path (paths may hold colons)."""
    if Path(text).exists():
        return Path(text), None
    for cut in range(len(text) - 1, 0, -1):
        if text[cut] == ":" and Path(text[:cut]).exists():
            return Path(text[:cut]), text[cut + 1:] or None
    raise ClientError(f"no such file or directory: {text.rpartition(':')[0] if ':' in text else text}")


def open_source(text: str, *, credentials: Credentials | None = None, plain_http: bool | None = None,
                insecure: bool = False) -> Source | SavedImage:
    """`oci:DIR[:TAG]` or a directory: an OCI layout. `oci-archive:FILE[:TAG]`: a tar of one.
    `docker-archive:FILE[:TAG]`: a `docker save` archive. A file without a prefix is the
    latter when it has a manifest.json, else the former. `docker://HOST/REPO[:TAG|@DIGEST]`: an
    image in a registry (the other arguments say how to reach it). `docker-daemon:IMAGE`: an
    image in the Docker engine ($DOCKER_HOST); `containers-storage:IMAGE` or `podman:IMAGE`: one
    in podman's storage."""
    if text.startswith("docker-daemon:"):
        return SavedImage(DockerEngine(), _engine_image(text))
    if text.startswith(("containers-storage:", "podman:")):
        return SavedImage(Podman(), _engine_image(text))
    if text.startswith("docker://"):
        ref = parse_reference(text)
        client = RegistryClient(ref.api_host, credentials=credentials, plain_http=plain_http, insecure=insecure)
        return RegistrySource(client.repository(ref.repository), ref.tag, ref.digest)
    if text.startswith("oci:"):
        return LayoutSource(*split_path(text.removeprefix("oci:")))
    if text.startswith("oci-archive:"):
        return OciArchiveSource(*split_path(text.removeprefix("oci-archive:")))
    if text.startswith("docker-archive:"):
        return ArchiveSource(*split_path(text.removeprefix("docker-archive:")))
    path, tag = split_path(text)
    if path.is_dir():
        return LayoutSource(path, tag)
    # docker 25 and later write both manifest.json and an OCI index: keep reading those as docker did.
    files = TarFiles(path)
    return ArchiveSource(path, tag) if files.has("manifest.json") or not files.has("index.json") \
        else OciArchiveSource(path, tag)


def _engine_image(text: str) -> str:
    """The image an engine source names: a reference or an ID, nothing an engine could read as
    a path or an option."""
    name = text.partition(":")[2]
    if not _ENGINE_IMAGE.match(name) or {".", ".."} & set(name.split("/")):
        raise ClientError(f"{text!r}: name an image, as IMAGE[:TAG] or its ID")
    return name
