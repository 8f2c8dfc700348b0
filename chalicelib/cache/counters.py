"""What the cache did, for `berth stats`: counted in memory and added to a per-day item at most
every `stats_seconds` per Lambda container, so a cached pull does not pay a write for its own
statistics. A container that is retired loses what it had not written yet (at most that
interval's worth): the figures are a lower bound."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from chalicelib.storage.cache import CacheStore

FIELDS = (
    "hits",  # answered from the cache without asking the upstream
    "misses",  # needed the upstream (first pulls, changed tags)
    "revalidated",  # a stale tag the upstream confirmed unchanged with one HEAD
    "stale",  # served stale because the upstream could not answer
    "upstream_requests",  # every request sent upstream, token requests included
    "bytes_saved",  # bytes served from the cache that the upstream would otherwise have sent
    "bytes_copied",  # blob bytes the copier brought into S3
    "copies",  # blobs copied and verified
    "copies_rejected",  # copies refused: the bytes did not match their digest
    "evicted",  # items removed for not being pulled
    "bytes_evicted",
)


def day_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


class CacheCounters:
    def __init__(self, store: CacheStore, interval: int, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: Counter[str] = Counter()
        self._flushed = 0.0

    def add(self, **counts: int) -> None:
        unknown = set(counts) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown cache counters {sorted(unknown)}")
        with self._lock:
            self._pending.update(counts)

    def flush(self, force: bool = False) -> None:
        now = self._clock()
        with self._lock:
            if not self._pending or (not force and now - self._flushed < self._interval):
                return
            pending, self._pending, self._flushed = self._pending, Counter(), now
        self._store.add_counts(day_of(now), pending)


def totals(days: dict[str, dict[str, int]]) -> dict[str, int]:
    """Every counter summed over the days given."""
    summed: Counter[str] = Counter()
    for counts in days.values():
        summed.update({k: v for k, v in counts.items() if k in FIELDS})
    return {name: summed[name] for name in FIELDS}
