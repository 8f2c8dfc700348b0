"""Where each record lives in the table: its `pk` and `sk` (docs/architecture.md)."""

from __future__ import annotations

import zlib

CATALOG = "catalog"
TOMBSTONE = "doomed#"  # pk prefix of a removed-but-not-yet-deleted blob copy (see BlobRecords.promote)
UNSETTLED_BODY = "body#"  # pk prefix, then the key, of a manifest body in S3 that a push or delete is settling


def unsettled_body_pk(key: str) -> str:
    return f"{UNSETTLED_BODY}{key}"


def repo_pk(repo: str) -> str:
    return f"repo#{repo}"


def upload_pk(uuid: str) -> str:
    return f"upload#{uuid}"


def blob_pk(digest: str) -> str:
    return f"blob#{digest}"


def link_sk(digest: str) -> str:
    return f"link#{digest}"


def manifest_sk(digest: str) -> str:
    return f"manifest#{digest}"


def tag_sk(tag: str) -> str:
    """Tags list in the spec's lexical order (case-insensitive); the exact tag breaks ties.
    Tags cannot contain '#', which sorts below every character they can."""
    return f"tag#{tag.lower()}#{tag}"


def referrer_sk(subject: str, digest: str) -> str:
    return f"referrer#{subject}#{digest}"


# The sparse index the lifecycle jobs query instead of scanning the table (docs/lifecycle.md):
# only blob records no manifest may reference (and tombstones), upload records and unsettled
# manifest bodies carry its partition key `sweep`; its sort key is their `touched`. Each kind is
# spread over a few partition keys, so that no single one takes every write of a busy registry.
SWEEP_INDEX = "sweep"
SWEEP_SHARDS = 8


def sweep_shard(kind: str, name: str) -> str:
    """The index partition of a blob (kind "blob", by digest), an upload (by uuid) or an
    unsettled body (by key)."""
    return f"{kind}#{zlib.crc32(name.encode()) % SWEEP_SHARDS}"


def sweep_shards(kind: str) -> list[str]:
    return [f"{kind}#{n}" for n in range(SWEEP_SHARDS)]
