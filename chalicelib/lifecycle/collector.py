"""Online garbage collection: apply retention rules, then remove unreferenced blobs, while
the registry keeps taking pushes (docs/lifecycle.md has the design and the races).

A run has two phases, each resumable: retention walks the catalog (checkpoint: the last
repository done), the sweep scans blob records (checkpoint: the scan position). The
checkpoint lives in the table with a lease, so a run can stop near the Lambda's time limit
and the next invocation carries on, and two collectors never run at once. A dry run reads
only: it simulates what retention would count out, and writes nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.lifecycle.policy import Lifecycle
from chalicelib.lifecycle.retention import ManifestInfo, TagInfo, plan
from chalicelib.lifecycle.sweep import blob_collectible
from chalicelib.manifests.mediatypes import INDEXES
from chalicelib.manifests.service import Manifests
from chalicelib.storage.housekeeping import HousekeepingStore
from chalicelib.storage.keys import TOMBSTONE
from chalicelib.storage.records import ManifestRecord
from chalicelib.storage.s3 import BlobStore

LEASE_SECONDS = 20 * 60  # longer than a Lambda can run; renewed at every checkpoint
# Progress is saved this often (and when stopping): a crash repeats at most this much work,
# all of it idempotent, without a write per repository or page.
CHECKPOINT_SECONDS = 30
_SWEPT = ("blob#", TOMBSTONE)


class Busy(Exception):
    """Another collection holds the lease."""


@dataclass
class Run:
    """One collection, as checkpointed between invocations."""

    started: int
    cutoff: int  # blobs untouched since before this may go; fixed for the whole run
    phase: str = "retention"  # then "sweep"
    repo_after: str | None = None
    scan_start: dict[str, str] | None = None
    tags: int = 0
    manifests: int = 0
    blobs: int = 0
    bytes: int = 0
    complete: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Run:
        return cls(**values)


class Collector:
    def __init__(self, store: HousekeepingStore, manifests: Manifests, blobs: BlobStore, lifecycle: Lifecycle,
                 clock: Callable[[], float], notify: Callable[[str], None] = lambda line: None,
                 page_size: int = 500) -> None:
        self._store = store
        self._page_size = page_size  # items read per scan page; a checkpoint after each
        self._manifests = manifests
        self._blobs = blobs
        self._lifecycle = lifecycle
        self._clock = clock
        self._notify = notify
        self._saved = 0

    def _now(self) -> int:
        return int(self._clock())

    def dry_run(self) -> Run:
        now = self._now()
        run = Run(now, now - self._lifecycle.gc_grace)
        pending: Counter[str] = Counter()  # blob digest -> expiring manifests that would count it out
        for repo in self._store.repositories():
            self._retain(run, repo, pending)
        for page, _ in self._store.scan(_SWEPT, page_size=self._page_size):
            self._sweep(run, page, pending)
        run.complete = True
        return run

    def due(self) -> bool:
        """Whether a scheduled invocation has work: a run to carry on, or `gc_interval` passed
        since the last one finished."""
        state = self._store.gc_state()
        return "run" in state or self._now() - state.get("last_finished", 0) >= self._lifecycle.gc_interval

    def run(self, should_stop: Callable[[], bool]) -> Run:
        """Carry on with the checkpointed run, or start one; stop early when `should_stop`
        says so, with the checkpoint saved. Raises Busy while another collection holds the lease."""
        owner, now = uuid.uuid4().hex, self._now()
        state = self._store.claim(owner, now, now + LEASE_SECONDS)
        if state is None:
            raise Busy()
        run = Run.from_dict(state["run"]) if "run" in state else Run(now, now - self._lifecycle.gc_grace)
        self._saved = now
        try:
            self._resume(run, owner, should_stop)
        finally:
            self._store.release(owner, self._now() if run.complete else None)
        return run

    def _resume(self, run: Run, owner: str, should_stop: Callable[[], bool]) -> None:
        if run.phase == "retention":
            for repo in self._store.repositories(after=run.repo_after):
                if should_stop():
                    self._checkpoint(run, owner)
                    return
                self._retain(run, repo, None)
                run.repo_after = repo
                self._checkpoint(run, owner, only_if_due=True)
            run.phase = "sweep"
        for page, position in self._store.scan(_SWEPT, run.scan_start, self._page_size):
            self._sweep(run, page, None)
            run.scan_start = position
            if position is not None and should_stop():
                self._checkpoint(run, owner)
                return
            self._checkpoint(run, owner, only_if_due=True)
        run.complete = True

    def _checkpoint(self, run: Run, owner: str, only_if_due: bool = False) -> None:
        """Save the run and renew the lease (raises Busy if another collector took it over)."""
        now = self._now()
        if only_if_due and now - self._saved < CHECKPOINT_SECONDS:
            return
        if not self._store.save_run(owner, asdict(run), now + LEASE_SECONDS):
            raise Busy("the collection's lease was taken over")
        self._saved = now

    # ---- retention -----------------------------------------------------------------------

    def _retain(self, run: Run, repo: str, pending: Counter[str] | None) -> None:
        """Apply the repository's retention rules; `pending` (a dry run) collects count-outs
        instead of making them."""
        policy = self._lifecycle.policy_for(repo)
        if policy is None or not policy.has_retention:
            return
        untagged_expire = policy.expire_untagged_after_days is not None
        records = {r.digest: r for r in self._store.manifests(repo)} if untagged_expire else {}
        tags = self._store.tags(repo)
        versions = {name: version for name, _, _, version in tags}
        decided = plan(policy, [TagInfo(name, digest, created) for name, digest, created, _ in tags],
                       [ManifestInfo(r.digest, r.created or 0, r.subject, self._children(r)) for r in records.values()],
                       self._now())
        for tag in decided.tags:
            if pending is not None or self._store.expire_tag(repo, tag.name, versions[tag.name]):
                run.tags += 1
                self._notify(f"tag {repo}:{tag.name} ({tag.digest})")
        failed: set[str] = set()
        for info in decided.manifests:
            record = records[info.digest]
            if decided.parents[info.digest] & failed:
                failed.add(info.digest)  # its index or subject stayed: so does it
            elif pending is not None:
                pending.update(set(self._manifests.blobs_of(record)))
            elif not self._manifests.remove(repo, record, only_as_read=True):
                failed.add(info.digest)  # pushed again or deleted meanwhile
            if info.digest not in failed:
                run.manifests += 1
                self._notify(f"manifest {repo}@{info.digest}")

    def _children(self, record: ManifestRecord) -> tuple[str, ...]:
        if record.media_type not in INDEXES:
            return ()
        return tuple(str(d.digest) for d in self._manifests.parsed(record).children)

    # ---- sweep ---------------------------------------------------------------------------

    def _sweep(self, run: Run, page: list[dict[str, Any]], pending: Counter[str] | None) -> None:
        """Remove the page's collectible blobs; a dry run (`pending`) only counts them."""
        removing = []
        for item in page:
            digest = _digest(item)
            if item["pk"].startswith(TOMBSTONE) or "doomed" in item:
                removing.append(item)  # left half-way by an earlier, interrupted invocation
            elif not blob_collectible(item, run.cutoff, pending[digest] if pending is not None else 0):
                continue
            elif pending is not None:
                removing.append(item)
            else:
                marked = self._store.doom(digest, run.cutoff, self._now())
                if marked is not None:
                    removing.append(marked)
        if pending is not None:
            for item in removing:
                self._freed(run, item)
            return
        # Links first, then the bytes, then the record: whatever an interruption leaves, the
        # doomed record (or the tombstone of one a new push took over) is still there for
        # the next invocation to finish.
        for item in removing:
            for repo in item.get("repos", ()):
                self._store.unlink_doomed(repo, _digest(item), item["key"])
        self._blobs.delete([item["key"] for item in removing])
        for item in removing:
            if self._store.forget_removed(item):
                self._freed(run, item)

    def _freed(self, run: Run, item: dict[str, Any]) -> None:
        run.blobs += 1
        run.bytes += item["size"]
        self._notify(f"blob {_digest(item)} ({item['size']} bytes)")


def _digest(item: dict[str, Any]) -> str:
    """The digest of a blob record (`blob#<digest>`) or of a tombstone (`doomed#<digest>`)."""
    return str(item["pk"].split("#", 1)[1])
