"""What the metadata table holds, as plain values."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Upload records carry a DynamoDB TTL this long after they start. The TTL only drops the
# record, leaving its S3 bytes behind, so the purge (BERTH_UPLOAD_MAX_AGE_HOURS) must come first.
UPLOAD_TTL_HOURS = 7 * 24


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
    # New on every push of it (and copied into the tag the push writes): a delete commits only
    # if the version it read is still there, so no tag written meanwhile is left behind.
    version: str | None = None


@dataclass(frozen=True)
class Page:
    """One page of a lexically ordered listing, and whether more follow."""

    items: list[str]
    more: bool


@dataclass(frozen=True)
class Piece:
    """An S3 object holding bytes of an upload not yet in a part."""

    key: str
    size: int


@dataclass(frozen=True)
class Direct:
    """A direct upload (docs/direct-upload.md): the client sends parts straight to S3."""

    size: int
    part_size: int
    phase: str = "open"  # open -> verifying -> (promoted, record gone) | failed
    digest: str | None = None  # what the finish claimed; checked by the verifier
    etag: str | None = None  # the completed object's, once verifying: every read takes only that object
    claim: str | None = None  # which finish moved it to verifying (a retried write knows its own)


@dataclass(frozen=True)
class UploadRecord:
    """An upload in progress, as stored between requests (chalicelib/uploads/state.py adds
    what a chunk does to it)."""

    uuid: str
    repo: str
    offset: int = 0
    hash_state: bytes | None = None  # running SHA-256; None where it cannot be resumed
    multipart_id: str | None = None
    parts: tuple[int, ...] = ()  # committed S3 part numbers, in byte order
    pieces: tuple[Piece, ...] = ()  # bytes after the last part, not yet in one
    created: int = field(default_factory=lambda: int(time.time()))
    direct: Direct | None = None  # for a direct upload, `offset` counts bytes verified
    finishing: str | None = None  # the digest a finish claimed the upload for (no chunk commits then)
