"""Shared fixtures: moto-backed AWS, the registry wired to it, and a client that sends each
request through the API Gateway stand-in into the real Lambda handler."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_ENDPOINT_URL", None)
# Quiet by default: tests/api/test_telemetry.py turns both on where it checks them.
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

from moto import mock_aws  # noqa: E402

from berth.local import motoguard  # noqa: E402
from berth.local.apigateway import GatewayResponse, invoke  # noqa: E402
from berth.local.provision import provision  # noqa: E402
from chalicelib.registry import Registry  # noqa: E402
from chalicelib.settings import Settings  # noqa: E402
from chalicelib.storage.clients import AwsClients  # noqa: E402

REGION = "us-east-1"


@pytest.fixture(scope="session")
def aws() -> Iterator[AwsClients]:
    """One moto and one set of clients for the session (building clients costs ~0.3 s);
    each test gets a bucket and table of its own instead. moto is made safe under concurrency
    as in the local mode."""
    motoguard.install()
    with mock_aws():
        yield AwsClients(REGION)


def new_registry(aws: AwsClients) -> Registry:
    """A registry on a bucket and table of its own."""
    name = f"berth-{uuid.uuid4().hex[:16]}"
    settings = Settings(bucket=name, table=name, region=REGION, presign_seconds=300)
    provision(aws.s3, aws.dynamodb, settings.bucket, settings.table)
    return Registry.build(settings, aws)


@pytest.fixture
def registry(aws: AwsClients) -> Registry:
    return new_registry(aws)


@pytest.fixture
def bucket(registry: Registry) -> str:
    return registry.settings.bucket


class ApiClient:
    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | list[tuple[str, str]] | None = None,
                source: str = "127.0.0.1") -> GatewayResponse:
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        if body and not any(k.lower() == "content-type" for k, _ in pairs):
            pairs.append(("Content-Type", "application/octet-stream"))
        return invoke(self.app, method, path, pairs, body, source)

    def get(self, path: str, **kw: Any) -> GatewayResponse:
        return self.request("GET", path, **kw)

    def head(self, path: str, **kw: Any) -> GatewayResponse:
        return self.request("HEAD", path, **kw)

    def post(self, path: str, **kw: Any) -> GatewayResponse:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> GatewayResponse:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> GatewayResponse:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> GatewayResponse:
        return self.request("DELETE", path, **kw)


@pytest.fixture
def client(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> ApiClient:
    import app as app_module

    monkeypatch.setattr(app_module, "registry", registry)
    return ApiClient(app_module.app)


@pytest.fixture
def command_lab(registry: Any, aws: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Lab for tests that run `berth` commands, which take their settings through the
    environment: it is restored after."""
    from tests.api.lifecycle_support import Lab

    saved = dict(os.environ)
    yield Lab(registry, aws, client, monkeypatch)
    os.environ.clear()
    os.environ.update(saved)
