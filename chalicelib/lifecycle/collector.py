"""Online garbage collection: apply retention rules, then remove unreferenced blobs, while
the registry keeps taking pushes (docs/lifecycle.md has the design and the races).

A run has two phases, each resumable: retention walks the catalog when some policy has
retention rules (checkpoint: the last repository done), the sweep reads the candidates the
sweep index holds, blobs that may have no reference (checkpoint: the position in it). The
checkpoint lives in the table with a lease, so a run can stop near the Lambda's time limit
and the next invocation carries on, and two collectors never run at once. A dry run reads
only: it simulates what retention would count out, and writes nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
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

# The lease is renewed with every checkpoint, at least every HEARTBEAT_SECONDS while a run
# goes on (and when it stops): a crash repeats at most that much work, all of it idempotent,
# without a write per repository or page. A collection killed without releasing its lease
# holds it at most LEASE_SECONDS; one silent for SILENT_SECONDS (two missed heartbeats) has
# stopped, and `berth gc --break-lease` may take its lease at once.
HEARTBEAT_SECONDS = 30
LEASE_SECONDS = 4 * HEARTBEAT_SECONDS
SILENT_SECONDS = 2 * HEARTBEAT_SECONDS


class Busy(Exception):
    """Another collection holds the lease."""

    def __init__(self, holder: Lease | None = None) -> None:
        super().__init__("another collection holds the lease")
        self.holder = holder


@dataclass(frozen=True)
class Lease:
    """Who holds the collector's lease: a run's random id, its last heartbeat, and when the
    lease runs out unless renewed."""

    owner: str
    heartbeat: int
    until: int

    def silent_for(self, now: int) -> int:
        return now - self.heartbeat


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
        self._holding: tuple[str, Run] | None = None  # our lease's owner id and run, while running

    def _now(self) -> int:
        return int(self._clock())

    def dry_run(self) -> Run:
        now = self._now()
        run = Run(now, now - self._lifecycle.gc_grace)
        pending: Counter[str] = Counter()  # blob digest -> expiring manifests that would count it out
        for repo in self._repositories():
            self._retain(run, repo, pending)
        seen: set[str] = set()
        for page, _ in self._store.candidates("blob", run.cutoff, page_size=self._page_size):
            seen.update(_digest(item) for item in page)
            self._sweep(run, page, pending)
        # Blobs only retention's count-outs would leave unreferenced are not candidates yet.
        self._sweep(run, self._store.blob_items(sorted(set(pending) - seen)), pending)
        run.complete = True
        return run

    def _repositories(self, after: str | None = None) -> Iterator[str]:
        """The repositories retention walks: none when no policy has retention rules."""
        if any(policy.has_retention for policy in self._lifecycle.policies):
            yield from self._store.repositories(after=after)

    def due(self) -> bool:
        """Whether a scheduled invocation has work: a run to carry on, or `gc_interval` passed
        since the last one finished."""
        state = self._store.gc_state()
        return "run" in state or self._now() - state.get("last_finished", 0) >= self._lifecycle.gc_interval

    def holder(self) -> Lease | None:
        """The collection holding the lease now, if any."""
        state = self._store.gc_state()
        if "lease_owner" not in state or state.get("lease_until", 0) < self._now():
            return None
        until = int(state["lease_until"])
        # A lease taken before heartbeats were recorded: its last renewal, at the latest.
        return Lease(state["lease_owner"], int(state.get("heartbeat", until - LEASE_SECONDS)), until)

    def break_lease(self, force: bool = False) -> Lease | None:
        """Free the lease of a collection that stopped heartbeating, or with `force` of any.
        Returns the lease broken (None: nobody held one). Raises Busy when the holder is
        heartbeating and not `force`d, or heartbeats while being broken. Safe either way: a
        holder still running finds its lease gone at its next heartbeat and stops, and until
        then every step of both runs is conditional and idempotent (docs/lifecycle.md)."""
        lease = self.holder()
        if lease is None:
            return None
        if not force and lease.silent_for(self._now()) < SILENT_SECONDS:
            raise Busy(lease)
        if not self._store.break_lease(lease.owner, lease.until):
            raise Busy(self.holder())
        return lease

    def run(self, should_stop: Callable[[], bool]) -> Run:
        """Carry on with the checkpointed run, or start one; stop early when `should_stop`
        says so, with the checkpoint saved. Raises Busy while another collection holds the lease."""
        owner, now = uuid.uuid4().hex, self._now()
        state = self._store.claim(owner, now, now + LEASE_SECONDS)
        if state is None:
            raise Busy(self.holder())
        run = Run.from_dict(state["run"]) if "run" in state else Run(now, now - self._lifecycle.gc_grace)
        self._saved, self._holding = now, (owner, run)
        try:
            self._resume(run, should_stop)
        finally:
            self._holding = None
            self._store.release(owner, self._now() if run.complete else None)
        return run

    def _resume(self, run: Run, should_stop: Callable[[], bool]) -> None:
        if run.phase == "retention":
            for repo in self._repositories(after=run.repo_after):
                if should_stop():
                    self._checkpoint()
                    return
                self._retain(run, repo, None)
                run.repo_after = repo
                self._heartbeat()
            run.phase = "sweep"
        for page, position in self._store.candidates("blob", run.cutoff, run.scan_start, self._page_size):
            self._sweep(run, page, None)
            run.scan_start = position
            if position is not None and should_stop():
                self._checkpoint()
                return
            self._heartbeat()
        run.complete = True

    def _heartbeat(self) -> None:
        """Renew the lease and save the run if HEARTBEAT_SECONDS have passed (a dry run holds
        no lease). Called between steps, so a long repository or page keeps the lease too."""
        if self._holding is not None and self._now() - self._saved >= HEARTBEAT_SECONDS:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Save the run and renew the lease (raises Busy if another collector took it over)."""
        assert self._holding is not None
        owner, run = self._holding
        now = self._now()
        if not self._store.save_run(owner, asdict(run), now, now + LEASE_SECONDS):
            raise Busy()
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
            self._heartbeat()
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
                if pending is None and item.get("refs"):
                    self._store.referenced_after_all(digest)  # counted out by one manifest of several
                continue
            elif pending is not None:
                removing.append(item)
            else:
                marked = self._store.doom(digest, run.cutoff, self._now())
                if marked is not None:
                    removing.append(marked)
                self._heartbeat()
        if pending is not None or not removing:
            for item in removing:
                self._freed(run, item)
            return
        # Links first, then the bytes, then the record: whatever an interruption leaves, the
        # doomed record (or the tombstone of one a new push took over) is still there for
        # the next invocation to finish.
        for item in removing:
            for repo in item.get("repos", ()):
                self._store.unlink_doomed(repo, _digest(item), item["key"])
            self._heartbeat()
        self._blobs.delete([item["key"] for item in removing])
        for item in removing:
            if self._store.forget_removed(item):
                self._freed(run, item)
            self._heartbeat()

    def _freed(self, run: Run, item: dict[str, Any]) -> None:
        run.blobs += 1
        run.bytes += item["size"]
        self._notify(f"blob {_digest(item)} ({item['size']} bytes)")


def _digest(item: dict[str, Any]) -> str:
    """The digest of a blob record (`blob#<digest>`) or of a tombstone (`doomed#<digest>`)."""
    return str(item["pk"].split("#", 1)[1])
