"""Progress of blob transfers: one meter per blob. `Progress()` shows nothing; `Bars()` draws a
tqdm bar per blob on stderr."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO


class Meter:
    """Counts the bytes of one blob. Silent; subclasses draw. Safe across threads (parts of a
    blob go in parallel)."""

    def advance(self, count: int) -> None:
        """`count` more bytes done (negative: a failed attempt's bytes to send again)."""

    def close(self, outcome: str) -> None:
        """The blob is done: `outcome` says how ("pushed", "exists", "mounted", "pulled")."""


class Progress:
    """Makes a meter per blob. This one shows nothing."""

    def meter(self, digest: str, size: int) -> Meter:
        return Meter()


class _Bar(Meter):
    def __init__(self, bar: Any) -> None:
        self._bar, self._lock = bar, threading.Lock()

    def advance(self, count: int) -> None:
        with self._lock:
            self._bar.update(count)

    def close(self, outcome: str) -> None:
        with self._lock:
            if self._bar.n < self._bar.total and outcome != "pushed":
                self._bar.update(self._bar.total - self._bar.n)  # nothing sent: show it done
            self._bar.set_postfix_str(outcome, refresh=False)
            self._bar.close()


class Bars(Progress):
    """A tqdm bar per blob on `stream` (stderr), labelled with the blob's short digest."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr

    def meter(self, digest: str, size: int) -> Meter:
        from tqdm import tqdm  # only programs that draw bars pay for the import

        label = digest.split(":")[-1][:12]
        return _Bar(tqdm(total=size, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                         file=self._stream, leave=True, dynamic_ncols=True))
