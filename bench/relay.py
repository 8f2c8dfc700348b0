"""`berth relay` as its own process in front of a registry (the local mode), on a free port,
so that its memory is its own and can be read from /proc while it runs."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import processes
from bench.listening import answers, free_port

START_SECONDS = 30


@dataclass(frozen=True)
class Relay:
    address: str  # host:port, for clients
    pid: int
    started_rss: int  # bytes resident once it answered its first request: the interpreter and imports

    def peak_rss(self) -> int:
        return processes.peak_rss(self.pid)


@contextmanager
def relay(upstream: str, workdir: Path) -> Iterator[Relay]:
    """A relay forwarding to `upstream` (host:port, plain HTTP), spooling under `workdir`; stopped
    as Ctrl-C stops it, which removes its spool directory."""
    port = free_port()
    log_path = workdir / "berth-relay.log"
    command = [sys.executable, "-m", "berth.cli", "relay", "--quiet", "--listen", f"127.0.0.1:{port}",
               "--upstream", f"http://{upstream}", "--spool", str(workdir)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not answers(port):  # forwarded to the upstream: both are up
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"berth relay did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield Relay(f"127.0.0.1:{port}", process.pid, processes.rss(process.pid))
    finally:
        process.terminate()  # SIGTERM: handled as Ctrl-C
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
