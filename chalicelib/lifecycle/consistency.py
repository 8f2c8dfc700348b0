"""What must hold between the table and the bucket, checked over one snapshot of both. Pure
logic: chalicelib/lifecycle/audit.py takes the snapshot and acts on what this finds.

After any request, finished or failed, and after the purge and a complete collection: each
tag names a stored manifest; each manifest's blobs are stored, and linked in its repository;
each blob's reference count is the number of manifests naming it; each link names its blob's
stored copy, and the blob's record lists the repository (or a collection would leave the
link behind); each record's object is in the bucket; and nothing is in the bucket, or open as
a multipart upload, that no record names, once older than the grace period.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.storage.keys import TOMBSTONE
from chalicelib.uploads.state import UploadState

# The S3 prefixes the registry writes (docs/architecture.md): other keys are not its to judge.
OWNED_PREFIXES = ("blobs/", "direct/", "manifests/")

# Kinds of finding.
DANGLING_TAG = "dangling-tag"  # a tag names a manifest its repository does not hold
MISSING_BLOB = "missing-blob"  # a manifest names a blob that is not stored (or being collected)
UNLINKED_BLOB = "unlinked-blob"  # a manifest's blob is stored, but not linked in its repository
UNTRACKED_LINK = "untracked-link"  # a link whose blob record does not list its repository
DANGLING_LINK = "dangling-link"  # a link to a blob that is not stored
STALE_LINK = "stale-link"  # a link to another copy than the one the blob's record names
UNREADABLE_MANIFEST = "unreadable-manifest"  # a stored manifest that does not parse
MISSING_OBJECT = "missing-object"  # a record names an object the bucket does not hold (or of another size)
WRONG_COUNT = "wrong-count"  # a blob's reference count is not the number of manifests naming it
HALF_REMOVED = "half-removed"  # a collection stopped while removing the blob: the next one finishes
BROKEN_UPLOAD = "broken-upload"  # an upload names pieces or a multipart upload S3 does not hold
ORPHAN_OBJECT = "orphan-object"  # an object no record names, older than the grace period
ORPHAN_MULTIPART = "orphan-multipart"  # an open multipart upload no upload names, older than the grace period


@dataclass(frozen=True)
class Finding:
    kind: str
    subject: str  # what it is about, as a user would name it
    detail: str
    facts: dict[str, Any] = field(default_factory=dict, compare=False)  # what a repair needs


@dataclass(frozen=True)
class StoredManifest:
    repo: str
    digest: str
    blobs: tuple[str, ...] | None  # None: the stored body did not parse
    body_key: str | None = None


@dataclass(frozen=True)
class StoredObject:
    size: int
    modified: float  # epoch seconds


@dataclass(frozen=True)
class OpenMultipart:
    key: str
    upload_id: str
    initiated: float  # epoch seconds


@dataclass
class Snapshot:
    blobs: list[dict[str, Any]]  # blob records (`blob#`, doomed ones too) and tombstones, as stored
    tags: list[tuple[str, str, str]]  # (repository, tag, digest)
    manifests: list[StoredManifest]
    links: list[tuple[str, str, str]]  # (repository, digest, key)
    uploads: list[UploadState]
    objects: dict[str, StoredObject]
    multipart: list[OpenMultipart]


def check(snapshot: Snapshot, cutoff: float) -> list[Finding]:
    """Everything that does not hold; objects and multipart uploads count as orphans only when
    older than `cutoff` (a request may be about to name a younger one)."""
    usable = {_digest(b): b for b in snapshot.blobs if b["pk"].startswith("blob#") and "doomed" not in b}
    return [*_tags(snapshot), *_manifests(snapshot, usable), *_counts(snapshot, usable),
            *_links(snapshot, usable), *_records(snapshot, usable), *_uploads(snapshot),
            *_orphans(snapshot, cutoff)]


def _digest(blob: dict[str, Any]) -> str:
    return str(blob["pk"].split("#", 1)[1])


def _tags(snapshot: Snapshot) -> Iterable[Finding]:
    stored = {(m.repo, m.digest) for m in snapshot.manifests}
    for repo, tag, digest in snapshot.tags:
        if (repo, digest) not in stored:
            yield Finding(DANGLING_TAG, f"{repo}:{tag}", f"names {digest}, which {repo} does not hold",
                          {"repo": repo, "tag": tag, "digest": digest})


def _manifests(snapshot: Snapshot, usable: dict[str, dict[str, Any]]) -> Iterable[Finding]:
    links = {(repo, digest) for repo, digest, _ in snapshot.links}
    for manifest in snapshot.manifests:
        subject = f"{manifest.repo}@{manifest.digest}"
        if manifest.body_key and manifest.body_key not in snapshot.objects:
            yield Finding(MISSING_OBJECT, subject, f"its body {manifest.body_key} is not in the bucket")
        if manifest.blobs is None:
            yield Finding(UNREADABLE_MANIFEST, subject, "the stored body does not parse")
            continue
        for digest in dict.fromkeys(manifest.blobs):
            blob = usable.get(digest)
            if blob is None:
                yield Finding(MISSING_BLOB, subject, f"names blob {digest}, which is not stored")
            elif (manifest.repo, digest) not in links:
                yield Finding(UNLINKED_BLOB, subject, f"names blob {digest}, stored but not linked in {manifest.repo}",
                              {"repo": manifest.repo, "digest": digest, "key": blob["key"], "size": blob["size"]})


def _counts(snapshot: Snapshot, usable: dict[str, dict[str, Any]]) -> Iterable[Finding]:
    named = Counter(d for m in snapshot.manifests if m.blobs is not None for d in set(m.blobs))
    for digest, blob in usable.items():
        refs = blob.get("refs")
        if refs is not None and refs != named[digest]:  # no count at all: a record older than counting
            yield Finding(WRONG_COUNT, digest, f"counts {refs} references; {named[digest]} manifests name it",
                          {"digest": digest, "seen": refs, "counted": named[digest]})


def _links(snapshot: Snapshot, usable: dict[str, dict[str, Any]]) -> Iterable[Finding]:
    removing = {b["key"] for b in snapshot.blobs if b["pk"].startswith(TOMBSTONE) or "doomed" in b}
    for repo, digest, key in snapshot.links:
        blob, subject = usable.get(digest), f"{repo}@{digest}"
        if key in removing:
            continue  # a half-removed copy's links go with it
        if blob is None:
            yield Finding(DANGLING_LINK, subject, f"links {key}, but the blob is not stored",
                          {"repo": repo, "digest": digest, "key": key})
            continue
        current = {"repo": repo, "digest": digest, "key": blob["key"], "size": blob["size"]}
        if blob["key"] != key:
            yield Finding(STALE_LINK, subject, f"links {key}, not the stored copy {blob['key']}", current)
        elif repo not in blob.get("repos", ()):
            yield Finding(UNTRACKED_LINK, subject, "the blob's record does not list the repository, so a "
                          "collection would leave this link behind", current)


def _records(snapshot: Snapshot, usable: dict[str, dict[str, Any]]) -> Iterable[Finding]:
    for digest, blob in usable.items():
        found = snapshot.objects.get(blob["key"])
        if found is None:
            yield Finding(MISSING_OBJECT, digest, f"its object {blob['key']} is not in the bucket")
        elif found.size != blob["size"]:
            yield Finding(MISSING_OBJECT, digest,
                          f"its object {blob['key']} holds {found.size} bytes, not {blob['size']}")
    for blob in snapshot.blobs:
        if blob["pk"].startswith(TOMBSTONE) or "doomed" in blob:
            yield Finding(HALF_REMOVED, _digest(blob), f"a collection stopped while removing {blob['key']}; "
                          "the next one finishes")


def _uploads(snapshot: Snapshot) -> Iterable[Finding]:
    open_ids = {m.upload_id for m in snapshot.multipart}
    for upload in snapshot.uploads:
        subject = f"upload {upload.uuid}"
        missing = [p.key for p in upload.pieces if p.key not in snapshot.objects]
        if missing:
            yield Finding(BROKEN_UPLOAD, subject, f"its pieces {', '.join(missing)} are not in the bucket")
        # A finish completes the multipart upload before it retires the record.
        if upload.multipart_id and upload.multipart_id not in open_ids and not upload.finishing:
            yield Finding(BROKEN_UPLOAD, subject, f"its multipart upload {upload.multipart_id} is not open")


def _orphans(snapshot: Snapshot, cutoff: float) -> Iterable[Finding]:
    named = {b["key"] for b in snapshot.blobs} | {key for _, _, key in snapshot.links}
    named |= {m.body_key for m in snapshot.manifests if m.body_key}
    for upload in snapshot.uploads:
        named |= {p.key for p in upload.pieces} | {upload.object_key}
    for key, found in sorted(snapshot.objects.items()):
        if key.startswith(OWNED_PREFIXES) and key not in named and found.modified < cutoff:
            yield Finding(ORPHAN_OBJECT, key, f"{found.size} bytes no record names", {"key": key})
    uploading = {u.multipart_id for u in snapshot.uploads if u.multipart_id}
    for multipart in snapshot.multipart:
        if multipart.upload_id not in uploading and multipart.initiated < cutoff:
            yield Finding(ORPHAN_MULTIPART, multipart.key, f"multipart upload {multipart.upload_id} no upload names",
                          {"key": multipart.key, "upload_id": multipart.upload_id})
