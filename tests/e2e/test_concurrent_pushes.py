"""Many skopeo pushes at once, sharing layers, against the local mode as `make run` serves it
(one Lambda container per push, so every request runs concurrently): whatever was
acknowledged pulls back digest-exact, and `berth fsck` finds table and bucket in agreement,
reference counts included. On moto alone most runs lost or broke one or two pushes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.conftest import Skopeo
from tests.e2e.images import Layout, blobs, tagged
from tests.local import LocalServer, local_server

pytestmark = pytest.mark.e2e

PUSHES = 16


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with local_server(tmp_path_factory.mktemp("busy"), "--containers", str(PUSHES)) as server:
        yield server


def test_concurrent_pushes_sharing_layers_lose_nothing(busy: LocalServer, tmp_path: Path) -> None:
    """One image pushed to 16 repositories at once: the same blobs are uploaded, promoted,
    linked and counted by 16 requests at a time."""
    skopeo = Skopeo(busy, tmp_path)
    src = Layout(tmp_path / "src")
    src.tag(src.image([3_000, 150_000, 600_000]), "1")

    def push(n: int) -> subprocess.CompletedProcess[str]:
        return skopeo.run("copy", "--dest-tls-verify=false", f"oci:{src.root}:1", skopeo.ref(f"team/app{n}:1"))

    def pull(n: int) -> subprocess.CompletedProcess[str]:
        out = tmp_path / f"out{n}"
        return skopeo.run("copy", "--src-tls-verify=false", skopeo.ref(f"team/app{n}:1"), f"oci:{out}:1")

    with ThreadPoolExecutor(PUSHES) as pool:
        pushed = list(pool.map(push, range(PUSHES)))
        assert [p.stderr for p in pushed if p.returncode] == []
        pulled = list(pool.map(pull, range(PUSHES)))
    assert [p.stderr for p in pulled if p.returncode] == []
    for n in range(PUSHES):
        assert tagged(tmp_path / f"out{n}", "1")["digest"] == tagged(src.root, "1")["digest"]
        assert blobs(tmp_path / f"out{n}") == blobs(src.root)

    fsck = subprocess.run([sys.executable, "-m", "berth.cli", "fsck", "--local", str(busy.port)],
                          capture_output=True, text=True, timeout=120)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert f"{PUSHES} manifests" in fsck.stdout and "clean: every check holds" in fsck.stdout
