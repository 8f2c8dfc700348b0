"""Counts every botocore call a set of clients makes, as `service.Operation`, and the time
spent inside them (request sent to answer parsed, retries included)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any


class AwsCallCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._seconds = 0.0
        self._started = threading.local()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call.*.*", self._before)
        client.meta.events.register("after-call.*.*", self._after)
        client.meta.events.register("after-call-error.*.*", self._after)

    def _before(self, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".", 2)[1:]
        self._started.at = time.perf_counter()
        with self._lock:
            self._calls[f"{service}.{operation}"] += 1

    def _after(self, **_: Any) -> None:
        started = getattr(self._started, "at", None)
        if started is not None:
            with self._lock:
                self._seconds += time.perf_counter() - started
            self._started.at = None

    def calls(self) -> Counter[str]:
        with self._lock:
            return Counter(self._calls)

    def seconds(self) -> float:
        """Time spent in AWS calls so far: sample it around a request to split handler time."""
        with self._lock:
            return self._seconds
