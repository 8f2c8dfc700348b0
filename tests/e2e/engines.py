"""Docker Engine and containerd for the end-to-end tests: each started once per session with all
of its state in a temporary directory, and stopped by PID. They only move images, so neither
needs iptables, a bridge, overlay storage or cgroups: dockerd runs with `vfs` storage and no
networking of its own, containerd without its CRI plugin, and ctr unpacks with the `native`
snapshotter. Docker trusts plain HTTP to 127.0.0.1 registries without being told."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Debian's CLI, the daemon's own version; a newer /usr/local/bin/docker may come first in PATH.
DOCKER_CLI = "/usr/bin/docker"
START_SECONDS = 60
STOP_SECONDS = 30


def _missing(*commands: str) -> str | None:
    absent = [c for c in commands if not (shutil.which(c) or Path(c).exists())]
    return f"{', '.join(absent)} not installed: run scripts/install-tools (make test does)" if absent else None


@contextmanager
def _daemon(command: Sequence[str], log_path: Path, up: Callable[[], bool], name: str) -> Iterator[int]:
    """A daemon of ours, up once `up()` says so; stopped with SIGTERM (then SIGKILL) by PID."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not up():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.1)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run(command: Sequence[str], env: dict[str, str], timeout: float, stdin: str | None) -> \
        subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), env=env, input=stdin, capture_output=True, text=True, timeout=timeout)


@dataclass
class Docker:
    """The Docker CLI against our dockerd. `config` is the client's own directory (`docker
    login` keeps credentials there): a test that logs in passes one of its own."""

    home: Path

    @property
    def socket(self) -> Path:
        return self.home / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self, config: Path | None = None) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_CONFIG": str(config or self.home / "client"),
                "DOCKER_BUILDKIT": "0"}

    def run(self, *args: str, config: Path | None = None, timeout: float = 120,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return _run([DOCKER_CLI, *args], self.env(config), timeout, stdin)

    def ok(self, *args: str, config: Path | None = None, stdin: str | None = None) -> str:
        result = self.run(*args, config=config, stdin=stdin)
        assert result.returncode == 0, f"docker {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout


@contextmanager
def dockerd(home: Path, *options: str) -> Iterator[Docker]:
    """A dockerd of ours (images only: no iptables, bridge or overlay), with `options` added."""
    problem = _missing("dockerd", DOCKER_CLI)
    assert problem is None, problem
    docker = Docker(home)
    command = ["dockerd", "--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none",
               "--data-root", str(home / "data"), "--exec-root", str(home / "exec"), "-H", docker.host,
               "--pidfile", str(home / "docker.pid"), *options]

    def up() -> bool:
        return docker.socket.exists() and docker.run("version", timeout=10).returncode == 0

    try:
        with _daemon(command, home / "dockerd.log", up, "dockerd"):
            yield docker
    finally:
        shutil.rmtree(home / "data", ignore_errors=True)  # vfs keeps a full copy of every layer


@dataclass
class Ctr:
    """ctr against our containerd."""

    home: Path

    @property
    def socket(self) -> Path:
        return self.home / "containerd.sock"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CONTAINERD_SNAPSHOTTER": "native"}
        return _run(["ctr", "-a", str(self.socket), *args], env, timeout, None)

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"ctr {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout


CONTAINERD_CONFIG = """version = 2
root = "{home}/root"
state = "{home}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{home}/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{home}/opt"
"""


@contextmanager
def containerd(home: Path) -> Iterator[Ctr]:
    problem = _missing("containerd", "ctr")
    assert problem is None, problem
    ctr = Ctr(home)
    config = home / "config.toml"
    config.write_text(CONTAINERD_CONFIG.format(home=home))

    def up() -> bool:
        return ctr.socket.exists() and ctr.run("version", timeout=10).returncode == 0

    try:
        with _daemon(["containerd", "--config", str(config)], home / "containerd.log", up, "containerd"):
            yield ctr
    finally:
        shutil.rmtree(home / "root", ignore_errors=True)
