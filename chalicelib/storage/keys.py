"""Where each record lives in the table: its `pk` and `sk` (docs/architecture.md)."""

from __future__ import annotations

CATALOG = "catalog"
TOMBSTONE = "doomed#"  # pk prefix of a removed-but-not-yet-deleted blob copy (see BlobRecords.promote)


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
