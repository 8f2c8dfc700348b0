"""An audit of the table against the bucket (`berth fsck`): reads both, reports what does not
hold (chalicelib/lifecycle/consistency.py says what must), and repairs only when asked.

It reads; it writes nothing unless `repair` is called, and each repair is conditional on what
the audit read, so a request committing meanwhile always wins. A registry taking pushes while
it is audited can show passing findings (a manifest pushed between the scans): a finding that
stays on a second run is real.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import RegistryError
from chalicelib.lifecycle import consistency as rules
from chalicelib.lifecycle.consistency import Finding, OpenMultipart, Snapshot, StoredManifest, StoredObject
from chalicelib.manifests.service import Manifests
from chalicelib.settings import Settings
from chalicelib.storage.auditing import AuditStore
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.keys import TOMBSTONE
from chalicelib.storage.records import BlobRecord
from chalicelib.storage.s3 import BlobStore, MissingObject
from chalicelib.storage.uploads import upload_record
from chalicelib.uploads.state import UploadState

# What a repair cannot restore: the bytes or the record are gone, or the collector and the
# purge finish it (the kind, and what to tell the user instead).
LEFT_ALONE = {
    rules.MISSING_BLOB: "the blob's bytes are gone: push the image again",
    rules.MISSING_OBJECT: "the bytes are gone: push again what needs them",
    rules.UNREADABLE_MANIFEST: "push the manifest again, or delete it",
    rules.HALF_REMOVED: "the next collection (berth gc) finishes it",
    rules.BROKEN_UPLOAD: "the client must start the upload again; the purge drops this one",
}


@dataclass(frozen=True)
class Report:
    findings: list[Finding]
    checked: dict[str, int]  # how many of each were read


@dataclass
class Audit:
    store: AuditStore
    blobs: BlobStore
    manifests: Manifests
    grace: int  # seconds an object may exist before a record names it
    clock: Callable[[], float] = time.time

    @classmethod
    def build(cls, settings: Settings, clients: AwsClients | None = None,
              clock: Callable[[], float] = time.time) -> Audit:
        aws = clients or AwsClients(settings.region)
        blobs = BlobStore(aws, settings.bucket, settings.presign_seconds)
        store = AuditStore(aws, settings.table)
        return cls(store, blobs, Manifests(blobs, store, settings.lifecycle), settings.lifecycle.gc_grace, clock)

    def run(self) -> Report:
        snapshot = self.snapshot()
        counts = {"blobs": len(snapshot.blobs), "tags": len(snapshot.tags), "manifests": len(snapshot.manifests),
                  "links": len(snapshot.links), "uploads": len(snapshot.uploads), "objects": len(snapshot.objects)}
        return Report(rules.check(snapshot, self.clock() - self.grace), counts)

    def snapshot(self) -> Snapshot:
        """Blob records first, then what names them, then the bucket. A manifest counted in or
        out after the blob records were read changes the count a repair is conditional on; an
        object written after its record was read is younger than the grace period."""
        blobs = list(self.store.items(("blob#", TOMBSTONE)))
        tags: list[tuple[str, str, str]] = []
        manifests: list[StoredManifest] = []
        links: list[tuple[str, str, str]] = []
        for item in self.store.items(("repo#",)):
            repo, (kind, _, rest) = item["pk"].split("#", 1)[1], item["sk"].partition("#")
            if kind == "tag":
                tags.append((repo, rest.rsplit("#", 1)[1], item["digest"]))
            elif kind == "link":
                links.append((repo, rest, item["key"]))
            elif kind == "manifest":
                manifests.append(self._manifest(repo, item))
        uploads = [UploadState.of(upload_record(item["pk"].split("#", 1)[1], item))
                   for item in self.store.items(("upload#",))]
        objects = {key: StoredObject(size, modified) for prefix in rules.OWNED_PREFIXES
                   for key, size, modified in self.blobs.objects(prefix)}
        multipart = [OpenMultipart(*found) for prefix in rules.OWNED_PREFIXES
                     for found in self.blobs.multipart_uploads(prefix)]
        return Snapshot(blobs, tags, manifests, links, uploads, objects, multipart)

    def _manifest(self, repo: str, item: dict[str, Any]) -> StoredManifest:
        record = self.store.manifest(item)
        try:
            blobs: tuple[str, ...] | None = tuple(self.manifests.blobs_of(record))
        except (RegistryError, MissingObject):
            blobs = None
        return StoredManifest(repo, record.digest, blobs, record.body_key)

    def repair(self, findings: Iterable[Finding]) -> list[str]:
        """Mend what can be mended without guessing; a line for each finding saying what was done."""
        return [f"{finding.subject}: {self._mend(finding)}" for finding in findings]

    def _mend(self, finding: Finding) -> str:
        facts = finding.facts
        if finding.kind in LEFT_ALONE:
            return f"left ({LEFT_ALONE[finding.kind]})"
        if finding.kind == rules.WRONG_COUNT:
            done = self.store.correct_refs(facts["digest"], facts["seen"], facts["counted"])
            return f"count set to {facts['counted']}" if done else "count changed meanwhile; left"
        if finding.kind == rules.DANGLING_TAG:
            done = self.store.drop_dangling_tag(facts["repo"], facts["tag"], facts["digest"])
            return "tag deleted" if done else "tag or manifest changed meanwhile; left"
        if finding.kind in (rules.UNLINKED_BLOB, rules.UNTRACKED_LINK, rules.STALE_LINK):
            blob = BlobRecord(facts["digest"], facts["key"], facts["size"])
            done = self.store.link_existing(facts["repo"], blob, None) == "linked"
            return f"linked in {facts['repo']}" if done else "blob changed meanwhile; left"
        if finding.kind == rules.DANGLING_LINK:
            done = self.store.unlink_doomed(facts["repo"], facts["digest"], facts["key"])
            return "link deleted" if done else "link changed meanwhile; left"
        if finding.kind == rules.ORPHAN_OBJECT:
            self.blobs.delete([facts["key"]])
            return "deleted"
        if finding.kind == rules.ORPHAN_MULTIPART:
            self.blobs.abort_multipart(facts["key"], facts["upload_id"])
            return "aborted"
        raise ValueError(f"no repair for {finding.kind}")
