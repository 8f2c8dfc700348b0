"""What the pages say about stored manifests and image configs, read from their JSON. Pure logic.

Stored manifests were checked when pushed (chalicelib/manifests/parse.py); these readers only
pick out what a person wants to see, and tolerate fields of the wrong type by leaving them out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from chalicelib.manifests import mediatypes as mt

IMAGE_CONFIGS = frozenset({"application/vnd.oci.image.config.v1+json",
                           "application/vnd.docker.container.image.v1+json"})
# The artifact types people look for beside an image, by what they are.
_KINDS = (
    ("Signatures", ("application/vnd.dev.cosign.artifact.sig", "application/vnd.cncf.notary.signature",
                    "application/vnd.dev.sigstore.bundle", "application/pgp-signature")),
    ("SBOMs", ("application/spdx", "application/vnd.cyclonedx", "application/vnd.syft", "text/spdx")),
    ("Attestations", ("application/vnd.in-toto", "application/vnd.dsse")),
)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: str | None = None  # os/architecture[/variant], in an index
    artifact_type: str | None = None

    @property
    def title(self) -> str | None:
        return self.annotations.get("org.opencontainers.image.title")

    @property
    def runnable(self) -> bool:
        """An index entry for a platform, not an attestation or other artifact beside them
        (BuildKit lists its attestations as `unknown/unknown` with a reference type)."""
        return not self.artifact_type and "vnd.docker.reference.type" not in self.annotations


@dataclass(frozen=True)
class ManifestView:
    media_type: str
    config: Descriptor | None = None  # images
    layers: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()  # indexes
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES

    @property
    def is_image(self) -> bool:
        """An image to run, not an artifact that borrows the manifest format."""
        return self.config is not None and self.config.media_type in IMAGE_CONFIGS and not self.artifact_type

    @property
    def kind(self) -> str | None:
        """The artifact type, as a referrers listing names it: the manifest's own, else its
        config's (None for an image or an index of images)."""
        if self.artifact_type:
            return self.artifact_type
        return None if self.is_index or self.is_image or self.config is None else self.config.media_type

    @property
    def compressed_size(self) -> int:
        """What a pull of this one manifest downloads: config and layers, as stored."""
        return (self.config.size if self.config else 0) + sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class HistoryStep:
    created: str | None
    created_by: str | None
    comment: str | None
    empty_layer: bool


@dataclass(frozen=True)
class ConfigView:
    platform: str | None
    created: str | None
    author: str | None
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    env: tuple[str, ...]
    labels: dict[str, str]
    working_dir: str | None
    user: str | None
    exposed_ports: tuple[str, ...]
    history: tuple[HistoryStep, ...]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(v for v in value if isinstance(v, str))


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def platform_of(value: Any) -> str | None:
    """`linux/arm64/v8`, from an index entry's `platform` or an image config."""
    if not isinstance(value, dict):
        return None
    parts = [_text(value.get("os")), _text(value.get("architecture")), _text(value.get("variant"))]
    if not parts[0] and not parts[1]:
        return None
    name = "/".join(p for p in parts if p)
    version = _text(value.get("os.version"))
    return f"{name} ({version})" if version else name


def _descriptor(value: Any) -> Descriptor | None:
    if not isinstance(value, dict):
        return None
    digest, size = _text(value.get("digest")), value.get("size")
    if digest is None or isinstance(size, bool) or not isinstance(size, int):
        return None
    return Descriptor(_text(value.get("mediaType")) or "", digest, size, _string_map(value.get("annotations")),
                      platform_of(value.get("platform")), _text(value.get("artifactType")))


def _descriptors(value: Any) -> tuple[Descriptor, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(d for d in (_descriptor(v) for v in value) if d is not None)


def read_manifest(body: bytes, media_type: str) -> ManifestView:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        return ManifestView(media_type)
    subject = _descriptor(doc.get("subject"))
    index = media_type in mt.INDEXES
    return ManifestView(media_type, config=None if index else _descriptor(doc.get("config")),
                        layers=() if index else _descriptors(doc.get("layers")),
                        children=_descriptors(doc.get("manifests")) if index else (),
                        subject=subject.digest if subject else None, artifact_type=_text(doc.get("artifactType")),
                        annotations=_string_map(doc.get("annotations")))


def read_config(body: bytes) -> ConfigView | None:
    """An image config (OCI or Docker); None when it is not one."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    run: dict[str, Any] = doc["config"] if isinstance(doc.get("config"), dict) else {}
    history: list[Any] = doc["history"] if isinstance(doc.get("history"), list) else []
    ports = run.get("ExposedPorts")
    return ConfigView(
        platform=platform_of(doc),
        created=_text(doc.get("created")),
        author=_text(doc.get("author")),
        entrypoint=_strings(run.get("Entrypoint")),
        cmd=_strings(run.get("Cmd")),
        env=_strings(run.get("Env")) or (),
        labels=_string_map(run.get("Labels")),
        working_dir=_text(run.get("WorkingDir")),
        user=_text(run.get("User")),
        exposed_ports=tuple(sorted(k for k in ports if isinstance(k, str))) if isinstance(ports, dict) else (),
        history=tuple(HistoryStep(_text(h.get("created")), _text(h.get("created_by")), _text(h.get("comment")),
                                  h.get("empty_layer") is True) for h in history if isinstance(h, dict)),
    )


def kind_of(artifact_type: str | None) -> str:
    """The group a referrer shows under: signatures, SBOMs, attestations, or other artifacts."""
    for name, prefixes in _KINDS:
        if artifact_type and artifact_type.startswith(prefixes):
            return name
    return "Other artifacts"


def group_referrers(referrers: list[Descriptor]) -> list[tuple[str, list[Descriptor]]]:
    """Referrers by kind (in the order of _KINDS), then by artifact type and digest."""
    order = [name for name, _ in _KINDS] + ["Other artifacts"]
    groups: dict[str, list[Descriptor]] = {}
    for referrer in sorted(referrers, key=lambda d: (d.artifact_type or "", d.digest)):
        groups.setdefault(kind_of(referrer.artifact_type), []).append(referrer)
    return [(name, groups[name]) for name in order if name in groups]


# ---- words for numbers ---------------------------------------------------------------------

_UNITS = ("kB", "MB", "GB", "TB", "PB")


def human_size(size: int) -> str:
    """Decimal units, as `docker images` prints them: one decimal below 100, none above."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1000
        text = f"{value:.1f}" if value < 99.95 else f"{value:.0f}"
        if float(text) < 1000 or unit == _UNITS[-1]:
            return f"{text} {unit}"
    raise AssertionError("unreachable")


_SPANS = ((365 * 86400, "year"), (30 * 86400, "month"), (7 * 86400, "week"), (86400, "day"), (3600, "hour"),
          (60, "minute"))


def age(seconds: float) -> str:
    """`3 minutes ago`, `just now`, `2 days ago`."""
    seconds = max(0, int(seconds))
    for span, unit in _SPANS:
        if seconds >= span:
            count = seconds // span
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def short_digest(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}:{hex_part[:12]}" if hex_part else digest
