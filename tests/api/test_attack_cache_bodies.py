"""Attack on the pull-through cache's manifest bodies in S3, the sibling of the manifests' own
(docs/lifecycle.md, "Manifest bodies in S3"): a cached manifest's conditional PutItem that took
effect, lost its answer and was sent again by botocore sees its own item and fails its
condition. The cache must not then delete the body that item names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.storage.clients import AwsClients
from tests.api.cache_support import PREFIX, Cached
from tests.api.faults import Injector
from tests.api.test_cache import cache, upstream  # noqa: F401 (the fixtures)
from tests.api.upstream_registry import OCI_MANIFEST

ACCEPT = {"Accept": OCI_MANIFEST}


@pytest.fixture(autouse=True)
def bodies_in_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chalicelib.cache.service.INLINE_LIMIT", 0)  # every body goes to S3


@pytest.fixture
def injector(aws: AwsClients) -> Iterator[Injector]:
    injector = Injector()
    injector.attach(aws.dynamodb)
    yield injector
    injector.detach()


def pull(cache: Cached, reference: str) -> Any:  # noqa: F811 (the fixture)
    return cache.api.get(f"/v2/{PREFIX}team/app/manifests/{reference}", headers=ACCEPT)


@pytest.mark.parametrize("by", ["digest", "tag"])
def test_a_cached_manifest_whose_put_botocore_sent_again_keeps_its_body(
        by: str, cache: Cached, injector: Injector) -> None:  # noqa: F811 (the fixture)
    """By digest, the manifest's put is sent again; by tag, the tag's (which comes after it)."""
    first, _ = cache.upstream.add_image("team/app", "first", [b"first"])
    with injector.armed_at(0, "retried") as made:
        assert pull(cache, first if by == "digest" else "first").status == 200
    puts = [n for n, call in enumerate(made, 1) if call == "dynamodb.PutItem"]
    digest, body = cache.upstream.add_image("team/app", "second", [b"second"])
    # By digest: the manifest's put follows the put noting its body unsettled; by tag, the
    # tag's put is the last.
    with injector.armed_at(puts[1] if by == "digest" else puts[-1], "retried"):
        assert pull(cache, digest if by == "digest" else "second").status == 200
    cache.upstream.down = True  # served from the cache alone
    again = pull(cache, digest if by == "digest" else "second")
    assert again.status == 200 and again.body == body, again.body[:300]
