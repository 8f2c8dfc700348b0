"""Debian's docker-registry (distribution 2.8.2) run with a configuration of the caller's:
an upstream for the cache's tests, the reference registry for the bench. Started on a port the
caller chose, stopped by its PID."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt

from tests.local import _answers

BINARY = "docker-registry"
START_SECONDS = 30


def htpasswd_line(user: str, password: str) -> str:
    """An htpasswd entry the registry's `htpasswd` auth takes (bcrypt, as `htpasswd -B` writes)."""
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server of ours by its PID, and kill it if it will not go."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def docker_registry(config: str, port: int, workdir: Path, binary: str = BINARY) -> Iterator[Path]:
    """The registry serving `config` (which listens on `port`) until the block ends; yields
    its log's path."""
    config_path, log_path = workdir / "config.yml", workdir / "registry.log"
    config_path.write_text(config)
    # Its Go S3 client fails on the AWS_CA_BUNDLE these machines set: start it without.
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    with log_path.open("wb") as log:
        process = subprocess.Popen([binary, "serve", str(config_path)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{binary} did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield log_path
    finally:
        stop(process)
