"""An upstream (the local mode) per module behind a byte-counting tap, and a relay per test in
front of it with a spool directory of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local import LocalServer, local_server
from tests.relay import RelayProcess, Tap, relay_process


@pytest.fixture(scope="module")
def upstream_env() -> dict[str, str]:
    """The upstream's environment: auth off, unless a module says otherwise."""
    return {}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, upstream_env: dict[str, str]) -> Iterator[LocalServer]:
    with local_server(tmp_path_factory.mktemp("upstream"), env=upstream_env) as server:
        yield server


@pytest.fixture(scope="module")
def tap(upstream: LocalServer) -> Iterator[Tap]:
    tap = Tap(upstream.port)
    yield tap
    tap.close()


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def relay(tap: Tap, spool: Path, tmp_path: Path) -> Iterator[RelayProcess]:
    with relay_process(tmp_path, tap.address, spool) as running:
        yield running
