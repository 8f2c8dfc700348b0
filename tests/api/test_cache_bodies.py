"""The pull-through cache's manifest bodies in S3, left by requests that died or whose answer was
lost: noted unsettled before they can be left, so that the purge deletes those no cache record
names (chalicelib/storage/bodies.py; docs/cache.md). Every body goes to S3 here."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib.lifecycle.jobs import Housekeeping
from chalicelib.lifecycle.policy import DAY, HOUR
from tests.api.cache_support import PREFIX, Cached
from tests.api.test_cache_housekeeping import cache, upstream  # noqa: F401 (the fixtures: a 7-day expiry)
from tests.api.test_lifecycle_purge import died
from tests.api.upstream_registry import OCI_MANIFEST


@pytest.fixture(autouse=True)
def bodies_in_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chalicelib.cache.service.INLINE_LIMIT", 0)


def pull(cache: Cached, reference: str) -> Any:  # noqa: F811 (the fixture)
    return cache.api.get(f"/v2/{PREFIX}team/app/manifests/{reference}", headers={"Accept": OCI_MANIFEST})


def bodies(cache: Cached) -> list[str]:  # noqa: F811 (the fixture)
    return [key for key in cache.cached_objects() if key.startswith("cache/manifests/")]


def purge_later(cache: Cached, hours: float = 3) -> int:  # noqa: F811 (the fixture)
    """The hourly purge, `hours` from now: the bodies it deleted."""
    return Housekeeping.build(cache.registry.settings, cache.aws, lambda: time.time() + hours * HOUR).purge().bodies


def test_a_fetch_that_dies_before_recording_its_body_leaves_it_to_the_purge(
        cache: Cached, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 (the fixture)
    digest, body = cache.upstream.add_image("team/app", "1", [b"layer"])
    died(monkeypatch, cache.store, "put_manifest")
    assert pull(cache, digest).status == 500
    assert len(bodies(cache)) == 1
    assert purge_later(cache, hours=1) == 0  # the request could still be recording it
    assert purge_later(cache) == 1
    assert bodies(cache) == []
    again = pull(cache, digest)
    assert again.status == 200 and again.body == body
    assert purge_later(cache) == 0 and len(bodies(cache)) == 1


def test_a_moved_tag_whose_write_lost_its_answer_leaves_the_old_body_to_the_purge(
        cache: Cached, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 (the fixture)
    cache.upstream.add_image("team/app", "v", [b"one"])
    assert pull(cache, "v").status == 200
    kept = bodies(cache)  # the manifest's and the tag's
    cache.clock.advance(61)  # past the tag's TTL
    _, moved = cache.upstream.add_image("team/app", "v", [b"two"])
    original = cache.store.put_tag

    def answer_lost(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(cache.store, "put_tag", original)
        original(*args, **kwargs)
        raise ConnectionError("read timeout: the tag's answer was lost")

    monkeypatch.setattr(cache.store, "put_tag", answer_lost)
    assert pull(cache, "v").status == 500
    assert len(bodies(cache)) == 4  # the old tag's body is no longer named
    assert purge_later(cache) == 1
    assert len(bodies(cache)) == 3 and set(kept) - set(bodies(cache)) != set()
    cache.upstream.down = True
    served = pull(cache, "v")
    assert served.status == 200 and served.body == moved


def test_eviction_that_dies_before_deleting_bodies_leaves_them_to_the_purge(
        cache: Cached, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 (the fixture)
    assert cache.registry.cache is not None
    cache.upstream.add_image("team/app", "old", [b"old"])
    assert pull(cache, "old").status == 200
    assert len(bodies(cache)) == 2
    cache.clock.advance(8 * DAY)
    eviction = cache.registry.cache.eviction
    died(monkeypatch, eviction._blobs, "delete")
    with pytest.raises(ConnectionError):
        eviction.run(lambda: False)
    assert purge_later(cache) >= 1
    eviction.run(lambda: False)
    assert bodies(cache) == []
    assert purge_later(cache) == 0
