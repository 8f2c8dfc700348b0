"""What the metadata table holds, as plain values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BlobRecord:
    """A verified blob: its digest and the S3 object holding its bytes."""

    digest: str
    key: str
    size: int


@dataclass(frozen=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    body: bytes | None  # inline when small; else in S3 at `body_key`
    body_key: str | None = None
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    created: int | None = None  # when it was last pushed (epoch seconds)


@dataclass(frozen=True)
class Page:
    """One page of a lexically ordered listing, and whether more follow."""

    items: list[str]
    more: bool
