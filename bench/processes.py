"""Client commands run as subprocesses, timed, with their peak memory.

The peak is the process's VmHWM in /proc, read every few milliseconds while it runs (the
last reading before it exits stands). Not `wait4`'s or `getrusage`'s ru_maxrss: Linux
starts a child's maximum at what the parent held when it forked, and the bench process,
holding moto and every object in it, is far bigger than any client.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

KiB = 1024
SAMPLE_SECONDS = 0.005


@dataclass(frozen=True)
class Finished:
    seconds: float  # wall time, start to exit
    peak_rss: int  # bytes: the most the process held resident
    stdout: str


class _PeakSampler(threading.Thread):
    """Follows one process's VmHWM until it exits (a zombie's status has none) or is stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(name=f"peak-rss-{pid}", daemon=True)
        self.pid = pid
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self.peak = max(self.peak, peak_rss(self.pid))
            except (OSError, RuntimeError):  # gone, or a zombie: its memory is released
                return
            if self._stop_event.wait(SAMPLE_SECONDS):
                return

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def run(command: Sequence[str], timeout: float, env: Mapping[str, str] | None = None) -> Finished:
    """Run `command` to completion; raises RuntimeError with its stderr if it fails or times out."""
    started = time.perf_counter()
    # Popen returns once the child has exec'd, so every reading is the command's own.
    with subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=dict(env) if env is not None else None) as process:
        sampler = _PeakSampler(process.pid)
        sampler.start()
        try:
            stdout, stderr = process.communicate(timeout=timeout)
            seconds = time.perf_counter() - started
        except subprocess.TimeoutExpired as expired:
            process.kill()
            _, stderr = process.communicate()
            raise RuntimeError(f"{' '.join(command)}: killed after {timeout:.0f} s\n"
                               f"{stderr.decode(errors='replace')}") from expired
        finally:
            peak = sampler.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit status {process.returncode}\n{stderr.decode(errors='replace')}")
    return Finished(seconds, peak, stdout.decode(errors="replace"))


def _status(pid: int, field: str) -> int:
    """A memory figure of /proc/PID/status (given there in kB, meaning KiB), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * KiB
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def peak_rss(pid: int) -> int:
    """The most memory (resident set) a running process has held so far, in bytes."""
    return _status(pid, "VmHWM")


def rss(pid: int) -> int:
    """What a running process holds now (resident set), in bytes."""
    return _status(pid, "VmRSS")
