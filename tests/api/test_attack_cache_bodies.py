"""Attack on the pull-through cache's manifest bodies in S3, the sibling of the manifests' own
(docs/lifecycle.md, "Manifest bodies in S3"): a cached manifest's conditional PutItem that took
effect, lost its answer and was sent again by botocore sees its own item and fails its
condition. The cache must not then delete the body that item names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.registry import Registry
from chalicelib.storage.clients import AwsClients
from tests.api.cache_support import PREFIX, Cached, cache_rule, cached_registry
from tests.api.faults import Injector
from tests.api.upstream_registry import OCI_MANIFEST, UpstreamRegistry

ACCEPT = {"Accept": OCI_MANIFEST}


@pytest.fixture
def upstream() -> Iterator[UpstreamRegistry]:
    with UpstreamRegistry(auth="token").running() as running:
        yield running


@pytest.fixture
def cache(registry: Registry, aws: AwsClients, monkeypatch: pytest.MonkeyPatch,
          upstream: UpstreamRegistry) -> Iterator[Cached]:
    monkeypatch.setattr("chalicelib.cache.service.INLINE_LIMIT", 0)  # every body goes to S3
    with cached_registry(registry, aws, monkeypatch, upstream, cache_rule(upstream, ttl_seconds=60)) as wired:
        yield wired


@pytest.fixture
def injector(aws: AwsClients) -> Iterator[Injector]:
    injector = Injector()
    injector.attach(aws.dynamodb)
    yield injector
    injector.detach()


def test_a_cached_manifest_whose_put_botocore_sent_again_keeps_its_body(cache: Cached, injector: Injector) -> None:
    first, _ = cache.upstream.add_image("team/app", "1", [b"first"])
    with injector.armed_at(0, "retried") as made:
        assert cache.api.get(f"/v2/{PREFIX}team/app/manifests/{first}", headers=ACCEPT).status == 200
    at = made.index("dynamodb.PutItem") + 1
    digest, body = cache.upstream.add_image("team/app", "2", [b"second"])
    with injector.armed_at(at, "retried"):
        assert cache.api.get(f"/v2/{PREFIX}team/app/manifests/{digest}", headers=ACCEPT).status == 200
    cache.upstream.down = True  # served from the cache alone
    again = cache.api.get(f"/v2/{PREFIX}team/app/manifests/{digest}", headers=ACCEPT)
    assert again.status == 200 and again.body == body, again.body[:300]


def test_a_cached_tag_whose_put_botocore_sent_again_keeps_its_body(cache: Cached, injector: Injector) -> None:
    cache.upstream.add_image("team/app", "first", [b"first"])
    with injector.armed_at(0, "retried") as made:
        assert cache.api.get(f"/v2/{PREFIX}team/app/manifests/first", headers=ACCEPT).status == 200
    at = len(made) - made[::-1].index("dynamodb.PutItem")  # the tag's put comes after the manifest's
    _, body = cache.upstream.add_image("team/app", "second", [b"second"])
    with injector.armed_at(at, "retried"):
        assert cache.api.get(f"/v2/{PREFIX}team/app/manifests/second", headers=ACCEPT).status == 200
    cache.upstream.down = True  # served from the cache alone
    again = cache.api.get(f"/v2/{PREFIX}team/app/manifests/second", headers=ACCEPT)
    assert again.status == 200 and again.body == body, again.body[:300]
