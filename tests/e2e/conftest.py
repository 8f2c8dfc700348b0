"""One local-mode registry for the whole end-to-end session, and skopeo to drive it; dockerd and
containerd, each started once for the session when a test asks for it (tests/e2e/engines.py)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.engines import Ctr, Docker, containerd, dockerd
from tests.local import LocalServer, local_server


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with local_server(tmp_path_factory.mktemp("berth-local")) as server:
        yield server


@pytest.fixture(scope="session")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    with dockerd(tmp_path_factory.mktemp("dockerd")) as engine:
        yield engine


@pytest.fixture(scope="session")
def ctr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctr]:
    with containerd(tmp_path_factory.mktemp("containerd")) as engine:
        yield engine


class Skopeo:
    def __init__(self, registry: LocalServer, workdir: Path) -> None:
        self.registry = registry
        self.workdir = workdir

    def ref(self, name: str) -> str:
        return f"docker://{self.registry.address}/{name}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        # --insecure-policy: no dependence on the machine's /etc/containers/policy.json.
        return subprocess.run(["skopeo", "--insecure-policy", *args], cwd=self.workdir,
                              capture_output=True, text=True, timeout=60)

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"skopeo {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout


@pytest.fixture
def skopeo(registry: LocalServer, tmp_path: Path) -> Skopeo:
    assert shutil.which("skopeo"), "skopeo is not installed: run scripts/install-tools (make test does)"
    return Skopeo(registry, tmp_path)
