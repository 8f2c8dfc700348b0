"""Waiting for work in a thread pool without deafening the main thread to Ctrl-C."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from typing import TypeVar

T = TypeVar("T")
DEFAULT_PARALLEL = 4  # blobs at once, and parts of large blobs at once
MAX_PARALLEL = 32  # what the commands let a user ask for
# A signal may land on a worker thread; Python acts on it only when the main thread runs, so
# the main thread must not sleep in one long wait.
WAKE_SECONDS = 0.2


def gather(futures: Sequence[Future[T]], stop: threading.Event | None = None) -> list[T]:
    """The results, in order. On the first failure (or Ctrl-C) sets `stop`, cancels what has
    not started, and raises."""
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=WAKE_SECONDS, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()
    except BaseException:
        if stop is not None:
            stop.set()
        for future in futures:
            future.cancel()
        raise
    return [future.result() for future in futures]
