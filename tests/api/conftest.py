"""Fixtures the API tests share beyond tests/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.lifecycle_support import Lab


@pytest.fixture
def command_lab(registry: Any, aws: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    """A Lab for tests that run `berth` commands, which take their settings through the
    environment: it is restored after."""
    saved = dict(os.environ)
    yield Lab(registry, aws, client, monkeypatch)
    os.environ.clear()
    os.environ.update(saved)
