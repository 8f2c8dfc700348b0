"""Eviction: cached content nobody pulled for the rule's `expire_after_days` is removed, and
so is content of prefixes no longer cached (scheduled Lambda `collect_cache`, and `berth cache
collect`). It scans the cache's items with a checkpoint, so a run stopped near the Lambda's
time limit carries on at the next tick; each removal is conditional on the item not having
been pulled since it was read, so a pull racing it keeps it.

Blobs are shared by every cached repository, so a blob goes by its own last pull (a pull of a
manifest counts for its blobs) and the longest expiry of any rule. A copy that stopped making
progress, or failed, a day ago is cleared too, so that a later pull starts it afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.cache.counters import CacheCounters
from chalicelib.cache.rules import CacheConfig
from chalicelib.storage.bodies import drop_body
from chalicelib.storage.cache import BLOB_PK, COPYING, DONE, CacheStore, Collection
from chalicelib.storage.s3 import BlobStore

DAY = 86_400
INTERVAL_SECONDS = DAY  # a new run starts this long after the last one finished
ABANDONED_SECONDS = DAY  # a copy (or a failure) this old without progress is cleared


@dataclass
class EvictionReport:
    items: int = 0  # tags, manifests, links, referrers
    blobs: int = 0
    bytes: int = 0
    complete: bool = False


class Eviction:
    def __init__(self, config: CacheConfig, store: CacheStore, blobs: BlobStore, counters: CacheCounters,
                 clock: Callable[[], float] = time.time, page_size: int = 500) -> None:
        self._config = config
        self._store = store
        self._blobs = blobs
        self._counters = counters
        self._clock = clock
        self._page_size = page_size

    def due(self) -> bool:
        """Whether a scheduled tick has work: rules to apply, and a run to carry on or to start."""
        if not self._config.enabled:
            return False  # nothing to scan a whole table for
        collection = self._store.collection()
        return collection.scan_start is not None or self._clock() - collection.last_finished >= INTERVAL_SECONDS

    def run(self, should_stop: Callable[[], bool], dry_run: bool = False,
            notify: Callable[[str], None] = lambda line: None) -> EvictionReport:
        now, report = int(self._clock()), EvictionReport()
        collection = Collection() if dry_run else self._store.collection()
        for page, position in self._store.scan(collection.scan_start, self._page_size):
            for item in page:
                self._consider(item, now, report, dry_run, notify)
            if position is not None and should_stop():
                if not dry_run:
                    self._store.save_collection(Collection(position, collection.last_finished))
                return report
        report.complete = True
        if not dry_run:
            self._store.save_collection(Collection(None, now))
        self._counters.add(evicted=report.items + report.blobs, bytes_evicted=report.bytes)
        self._counters.flush(force=True)
        return report

    def _consider(self, item: dict[str, Any], now: int, report: EvictionReport, dry_run: bool,
                  notify: Callable[[str], None]) -> None:
        pk, sk, pulled = item["pk"], item["sk"], int(item.get("last_pulled", 0))
        if pk.startswith(BLOB_PK):
            if not self._blob_goes(item, now):
                return
            if dry_run or self._store.forget(pk, sk, pulled):
                if not dry_run:
                    if item.get("multipart_id"):
                        self._blobs.abort_multipart(item["key"], item["multipart_id"])
                    self._blobs.delete([item["key"]])
                report.blobs += 1
                report.bytes += int(item.get("size") or 0) if item.get("state") == DONE else 0
                notify(f"blob {pk[len(BLOB_PK):]} ({item.get('state')})")
            return
        repo = pk.split("#", 1)[1]
        rule = self._config.rule_for(repo)
        expired = rule is None or rule.expire_after_days is not None and pulled < now - rule.expire_after_days * DAY
        if not expired:
            return
        if not dry_run and item.get("body_key"):  # should this run die between forgetting and deleting
            self._store.note_body((pk, sk), item["body_key"])
        removed = item if dry_run else self._store.forget(pk, sk, pulled)
        if removed is not None:
            if not dry_run and removed.get("body_key"):
                drop_body(self._store, self._blobs, removed["body_key"])
            report.items += 1
            notify(f"{repo} {sk}")

    def _blob_goes(self, item: dict[str, Any], now: int) -> bool:
        if item.get("state") == DONE:
            days = self._config.longest_expiry_days
            return days is not None and int(item.get("last_pulled", 0)) < now - days * DAY
        stalled = int(item.get("updated", 0)) < now - ABANDONED_SECONDS
        if item.get("state") == COPYING:
            return stalled and int(item.get("lease_until") or 0) < now
        return stalled  # failed
