"""Blob GETs and direct-upload part URLs are signed for no longer than the credentials that
sign them have left (S3 refuses the URL once they expire, whatever X-Amz-Expires says)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.registry import Registry
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.s3 import CREDENTIALS_MARGIN
from tests.conftest import REGION, ApiClient
from tests.helpers import digest_of

REPO = "team/app"


def expires_in(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])


def wired(registry: Registry, monkeypatch: pytest.MonkeyPatch, presign: int) -> ApiClient:
    """The registry on clients of their own, as a new Lambda container would build them, with
    its presigned lifetime set to `presign` seconds."""
    settings = replace(registry.settings, presign_seconds=presign)
    import app as app_module

    monkeypatch.setattr(app_module, "registry", Registry.build(settings, AwsClients(REGION)))
    return ApiClient(app_module.app)


def push(client: ApiClient, data: bytes) -> str:
    digest = digest_of(data)
    assert client.post(f"/v2/{REPO}/blobs/uploads/?digest={digest}", body=data).status == 201
    return digest


def test_blob_redirects_outlive_no_expiring_credentials(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that expire in 20 minutes (botocore reads AWS_CREDENTIAL_EXPIRATION as a
    container's refreshable credentials) bound an hour's lifetime to 20 minutes less a margin."""
    expiry = datetime.fromtimestamp(time.time() + 1200, UTC)
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", expiry.isoformat())
    client = wired(registry, monkeypatch, presign=3600)
    response = client.get(f"/v2/{REPO}/blobs/{push(client, b'layer bytes')}")
    assert response.status == 307
    assert 1200 - CREDENTIALS_MARGIN - 5 <= expires_in(response.header("Location") or "") <= 1200 - CREDENTIALS_MARGIN


def test_credentials_without_an_expiry_keep_the_configured_lifetime(registry: Registry,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_CREDENTIAL_EXPIRATION", raising=False)
    client = wired(registry, monkeypatch, presign=3600)
    response = client.get(f"/v2/{REPO}/blobs/{push(client, b'other bytes')}")
    assert expires_in(response.header("Location") or "") == 3600


def test_direct_upload_part_urls_are_bounded_too(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    expiry = datetime.fromtimestamp(time.time() + 1500, UTC)
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", expiry.isoformat())
    client = wired(registry, monkeypatch, presign=7200)
    started = client.post(f"/v2/{REPO}/blobs/uploads/?berth-direct={64 * 1024 * 1024}")
    assert started.status == 202, started.body
    listing: Any = client.get(f"{started.header('Location')}/parts").json()
    lifetimes = {expires_in(entry["url"]) for entry in listing["urls"]}
    assert lifetimes and all(1500 - CREDENTIALS_MARGIN - 5 <= s <= 1500 - CREDENTIALS_MARGIN for s in lifetimes)
