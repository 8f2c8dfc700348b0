"""Fixtures of the API tests with auth on: a registry with users in a mode, behind its gateway."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from chalicelib.auth.permissions import normalise_actions
from chalicelib.auth.secrets import hash_password
from chalicelib.registry import Registry
from tests.api.auth_support import PASSWORD
from tests.api.lifecycle_support import Lab
from tests.conftest import ApiClient
from tests.helpers import load_app


@pytest.fixture
def auth_registry(registry: Registry, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Registry:
    mode = getattr(request, "param", "token")
    monkeypatch.setenv("BERTH_AUTH", mode)
    registry.settings = replace(registry.settings, auth_mode=mode)
    registry.auth.settings = registry.settings
    accounts = registry.accounts
    for name, grants in {"alice": {"*": ["*"]}, "bob": {"team/*": ["pull"]}, "carol": {"carol/*": ["*"]}}.items():
        accounts.add_user(name, hash_password(PASSWORD, rounds=4))
        for pattern, actions in grants.items():
            accounts.grant(name, pattern, normalise_actions(actions))
    accounts.add_user("anonymous", None)
    accounts.grant("anonymous", "public/*", frozenset({"pull"}))
    return registry


@pytest.fixture
def api(auth_registry: Registry) -> ApiClient:
    return ApiClient(load_app(auth_registry))




@pytest.fixture
def lab(registry: Registry, aws: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """The lifecycle lab (tests/api/lifecycle_support.py) on the test's registry."""
    return Lab(registry, aws, client, monkeypatch)
