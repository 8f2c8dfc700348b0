"""The pull-through cache wired for handler-level tests: the real handler (through the API
Gateway stand-in) on moto, a copy queue on moto's SQS delivered to the real `copy_blob`
handler, a clock the test moves, and an upstream over real HTTP (tests/api/upstream_registry.py)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from berth.local.verifier import deliver
from chalicelib.cache.rules import CacheConfig, CredentialSource, Rule
from chalicelib.cache.wiring import build_cache
from chalicelib.registry import Registry
from chalicelib.storage.cache import CacheStore
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.table import from_item, to_item
from tests.api.upstream_registry import UpstreamRegistry
from tests.conftest import ApiClient
from tests.helpers import bucket_keys

PREFIX = "up/"
CREDENTIALS_ENV = "BERTH_TEST_UPSTREAM_CREDENTIALS"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Cached:
    api: ApiClient
    upstream: UpstreamRegistry
    registry: Registry
    aws: AwsClients
    queue_url: str
    clock: Clock

    @property
    def store(self) -> CacheStore:
        assert self.registry.cache is not None
        return self.registry.cache.store

    def copy(self) -> int:
        """Run the copier on every queued copy, as Lambda's SQS trigger would."""
        return deliver(lambda: contextlib.nullcontext(self.api.app), self.aws.sqs, self.queue_url, handler="copy_blob")

    def queued(self) -> int:
        attributes = self.aws.sqs.get_queue_attributes(QueueUrl=self.queue_url,
                                                       AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def items(self, pk_prefix: str = "cache") -> list[dict[str, Any]]:
        """Every cache item in the table (counters aside)."""
        pages = self.aws.dynamodb.get_paginator("scan").paginate(
            TableName=self.registry.settings.table, FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues=to_item({":p": pk_prefix}))
        return [from_item(i) for page in pages for i in page["Items"] if from_item(i)["pk"] != "cache"]

    def cached_objects(self) -> list[str]:
        return [k for k in bucket_keys(self.aws, self.registry.settings.bucket) if k.startswith("cache/")]

    def upstream_requests(self, action: Any) -> list[str]:
        """The requests the upstream saw while `action` ran, as "METHOD path"."""
        before = len(self.upstream.log)
        action()
        return [f"{e.method} {e.path}" for e in self.upstream.log[before:]]


@contextlib.contextmanager
def copier_running(cached: Cached) -> Iterator[None]:
    """The copier in a thread of its own, in a Lambda container of its own (as deployed): for
    pulls that wait on a copy."""
    import threading

    from tests.helpers import load_app

    app, stop = load_app(cached.registry), threading.Event()

    def poll() -> None:
        while not stop.is_set():
            deliver(lambda: contextlib.nullcontext(app), cached.aws.sqs, cached.queue_url, wait_seconds=1,
                    handler="copy_blob")

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def cache_rule(upstream: UpstreamRegistry, **options: Any) -> Rule:
    credentials = CredentialSource("env", CREDENTIALS_ENV) if upstream.auth else None
    return Rule(PREFIX, upstream.url, credentials=credentials, **options)


@contextlib.contextmanager
def cached_registry(registry: Registry, aws: AwsClients, monkeypatch: pytest.MonkeyPatch, upstream: UpstreamRegistry,
                    *rules: Rule) -> Iterator[Cached]:
    """The registry with these rules (default: PREFIX to `upstream`), counters written at once."""
    import app as app_module

    monkeypatch.setenv(CREDENTIALS_ENV, f"{upstream.user}:{upstream.password}")
    queue_url = aws.sqs.create_queue(QueueName=f"cache-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    config = CacheConfig(rules=rules or (cache_rule(upstream),), copy_queue_url=queue_url, stats_seconds=0)
    settings = replace(registry.settings, cache=config)
    clock = Clock()
    wired = replace(registry, settings=settings,
                    cache=build_cache(config, aws, registry.blobs, settings.table, clock=clock))
    monkeypatch.setattr(app_module, "registry", wired)
    yield Cached(ApiClient(app_module.app), upstream, wired, aws, queue_url, clock)
