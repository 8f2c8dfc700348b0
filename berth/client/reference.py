"""Image references: `host[:port]/repo[:tag][@digest]`, optionally written `docker://...`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth.client.errors import ClientError

DOCKER_HUB = "docker.io"
# Docker Hub is named docker.io in references but served from another host.
_API_HOSTS = {DOCKER_HUB: "registry-1.docker.io"}
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\Z")
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\Z")


@dataclass(frozen=True)
class Reference:
    """Where an image is: `registry` (`host[:port]`), `repository`, and a `tag` and/or `digest`."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host that serves the registry's API (differs from `registry` for Docker Hub)."""
        return _API_HOSTS.get(self.registry, self.registry)

    @property
    def reference(self) -> str | None:
        """What to ask the manifests endpoint for: the digest if there is one, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """`[docker://]host[:port]/repo[:tag][@digest]`. The first component is a host when it has
    a `.` or `:` or is `localhost`; otherwise the reference is on Docker Hub (`alpine` means
    `docker.io/library/alpine`)."""
    rest = text.removeprefix("docker://")
    rest, _, digest = rest.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ClientError(f"{text!r}: {digest!r} is not a digest")
    first, slash, after = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, after
    else:
        registry, path = DOCKER_HUB, rest if "/" in rest else f"library/{rest}"
    repository, colon, tag = path.rpartition(":")
    if not colon:
        repository, tag = path, ""
    if tag and not _TAG.match(tag):
        raise ClientError(f"{text!r}: {tag!r} is not a valid tag")
    if not _REPOSITORY.match(repository):
        raise ClientError(f"{text!r}: {repository!r} is not a valid repository name")
    return Reference(registry, repository, tag or None, digest or None)


def is_loopback(registry: str) -> bool:
    """Whether `host[:port]` names this machine (where registries speak plain HTTP by default)."""
    host = registry[1:registry.find("]")] if registry.startswith("[") else registry.split(":")[0]
    return host in ("localhost", "::1") or host.startswith("127.")
