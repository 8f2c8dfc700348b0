"""Runs the local mode as its own process, as `make run` does, for tests that talk to it over
real sockets (tests/local and tests/e2e)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 60


@dataclass
class LocalServer:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path  # stdout and stderr: the banner, then one access line per request

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def connect(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/v2/")
        return conn.getresponse().status in (200, 401)
    except OSError:
        return False
    finally:
        conn.close()


@contextmanager
def running(command: list[str], port: int, log_path: Path, name: str,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A server process of ours, up once `GET /v2/` answers on `port` (with any status: auth
    may be on); on exit it must stop cleanly on Ctrl-C (SIGINT)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    assert code == 0, f"{name} exited with {code} on Ctrl-C:\n{log_path.read_text(errors='replace')}"


@contextmanager
def local_server(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[LocalServer]:
    """`python -m berth.local` on a free port (with `env` added to the environment)."""
    port = free_port()
    log_path = workdir / "berth-local.log"
    command = [sys.executable, "-m", "berth.local", "--port", str(port), *args]
    with running(command, port, log_path, "the local mode", env) as process:
        yield LocalServer(port, process, log_path)
