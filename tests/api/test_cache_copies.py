"""The cache's copier and the upstreams it copes with: copies resumed across invocations (with
and without Range support), an upstream that serves bytes itself behind credentials (the pull
waits for the copy), redirects it must not follow, Basic-auth upstreams, and credentials that
never reach a client or a log."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
import requests

from chalicelib.cache.copier import Copier
from chalicelib.registry import Registry
from chalicelib.storage.clients import AwsClients
from tests.api.cache_support import PREFIX, Cached, cache_rule, cached_registry, copier_running
from tests.api.upstream_registry import UpstreamRegistry, digest_of
from tests.helpers import MiB

REPO = f"{PREFIX}team/app"


@pytest.fixture
def upstream(request: pytest.FixtureRequest) -> Iterator[UpstreamRegistry]:
    options = getattr(request, "param", {"auth": "token"})
    with UpstreamRegistry(**options).running() as running:
        yield running


@pytest.fixture
def cache(registry: Registry, aws: AwsClients, monkeypatch: pytest.MonkeyPatch,
          upstream: UpstreamRegistry) -> Iterator[Cached]:
    with cached_registry(registry, aws, monkeypatch, upstream) as wired:
        yield wired


def copier(cache: Cached) -> Copier:
    assert cache.registry.cache is not None
    return cache.registry.cache.copier


def s3_bytes(cache: Cached, digest: str) -> bytes:
    answer = cache.api.get(f"/v2/{REPO}/blobs/{digest}")
    assert answer.status == 307, answer.body
    fetched = requests.get(answer.header("Location"), timeout=30)
    assert fetched.status_code == 200
    return fetched.content


@pytest.mark.parametrize("ignore_range", [False, True], ids=["range", "no-range"])
def test_a_big_blob_is_copied_across_invocations_from_its_checkpoint(cache: Cached, ignore_range: bool) -> None:
    layer = os.urandom(12 * MiB + 123)
    cache.upstream.add_image("team/app", "1", [layer])
    cache.upstream.ignore_range = ignore_range
    digest = digest_of(layer)
    copier(cache).part_size = 5 * MiB
    cache.api.get(f"/v2/{REPO}/blobs/{digest}")
    cache.aws.sqs.purge_queue(QueueUrl=cache.queue_url)

    # Out of time after the first part: checkpointed, and a continuation queued.
    assert copier(cache).run(digest, should_stop=lambda: True) == f"continued at {5 * MiB}"
    (record,) = cache.items("cacheblob#")
    assert record["state"] == "copying" and record["offset"] == 5 * MiB and len(record["hash_state"]) == 112
    assert cache.queued() == 1
    assert cache.copy() == 1
    ranged = [e.range for e in cache.upstream.requests_to("/cdn/") if e.range]
    assert ranged == [f"bytes={5 * MiB}-"]
    (record,) = cache.items("cacheblob#")
    assert record["state"] == "done" and record["size"] == len(layer)
    assert s3_bytes(cache, digest) == layer


def test_a_duplicate_delivery_does_not_copy_twice(cache: Cached) -> None:
    layer = os.urandom(1000)
    cache.upstream.add_image("team/app", "1", [layer])
    digest = digest_of(layer)
    cache.api.get(f"/v2/{REPO}/blobs/{digest}")
    assert copier(cache).run(digest, lambda: False) == "copied"
    assert copier(cache).run(digest, lambda: False) == "nothing to copy"
    assert len(cache.cached_objects()) == 1


@pytest.mark.parametrize("upstream", [{"auth": "basic", "redirect": False}], indirect=True)
def test_an_upstream_serving_bytes_behind_credentials_makes_the_first_pull_wait_for_the_copy(cache: Cached) -> None:
    layer = os.urandom(2 * MiB)
    cache.upstream.add_image("team/app", "1", [layer])
    digest = digest_of(layer)
    with copier_running(cache):
        first = cache.api.get(f"/v2/{REPO}/blobs/{digest}")
    # No URL of the upstream's would work without its credentials: S3, once copied.
    assert first.status == 307 and str(cache.upstream.port) not in first.header("Location")
    assert requests.get(first.header("Location"), timeout=30).content == layer
    basic = [e for e in cache.upstream.log if e.authorization and e.authorization.startswith("Basic ")]
    assert basic, "the Basic credentials went upstream"


@pytest.mark.parametrize("upstream", [{"auth": "basic", "redirect": False}], indirect=True)
def test_a_copy_not_done_in_time_sends_the_client_back_to_wait_again(cache: Cached) -> None:
    layer = os.urandom(1000)
    cache.upstream.add_image("team/app", "1", [layer])
    digest = digest_of(layer)
    assert cache.registry.cache is not None
    cache.registry.cache.pull.wait_seconds = 0.3
    again = cache.api.get(f"/v2/{REPO}/blobs/{digest}")  # no copier running
    assert again.status == 307 and again.header("Location") == f"/v2/{REPO}/blobs/{digest}"
    cache.copy()
    assert s3_bytes(cache, digest) == layer


@pytest.mark.parametrize("upstream", [{"auth": "basic", "redirect": False}], indirect=True)
def test_a_waiting_pull_of_bytes_that_do_not_match_is_refused(cache: Cached) -> None:
    layer = os.urandom(1000)
    cache.upstream.add_image("team/app", "1", [layer])
    digest = digest_of(layer)
    cache.upstream.lies[digest] = b"not the layer"
    with copier_running(cache):
        refused = cache.api.get(f"/v2/{REPO}/blobs/{digest}")
    assert refused.status == 502 and refused.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert cache.cached_objects() == []


@pytest.mark.parametrize("upstream", [{"auth": None, "redirect": False}], indirect=True)
def test_an_open_upstream_serving_bytes_itself_is_where_the_first_pull_goes(cache: Cached) -> None:
    layer = os.urandom(1000)
    cache.upstream.add_image("team/app", "1", [layer])
    digest = digest_of(layer)
    first = cache.api.get(f"/v2/{REPO}/blobs/{digest}")
    assert first.status == 307 and first.header("Location") == f"{cache.upstream.url}/v2/team/app/blobs/{digest}"
    assert requests.get(first.header("Location"), timeout=30).content == layer


@pytest.mark.parametrize("upstream", [{"auth": "token", "cdn_host": "169.254.169.254"}], indirect=True)
def test_the_copier_follows_no_redirect_to_the_metadata_service(cache: Cached) -> None:
    layer = os.urandom(1000)
    cache.upstream.add_image("team/app", "1", [layer])
    digest = digest_of(layer)
    cache.api.get(f"/v2/{REPO}/blobs/{digest}")
    outcome = copier(cache).run(digest, lambda: False)
    assert outcome == "retrying later: the upstream redirected to 169.254.169.254, an address the cache does not " \
                      "fetch from"
    (record,) = cache.items("cacheblob#")
    assert record["state"] == "copying" and record["attempts"] == 1
    assert cache.cached_objects() == []


@pytest.mark.parametrize("upstream", [{"auth": "basic"}], indirect=True)
def test_credentials_reach_the_upstream_and_nothing_else(cache: Cached, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    layer = os.urandom(1000)
    digest, body = cache.upstream.add_image("team/app", "1", [layer])
    answers = [cache.api.get(f"/v2/{REPO}/manifests/1"), cache.api.get(f"/v2/{REPO}/blobs/{digest_of(layer)}")]
    cache.copy()
    cache.upstream.down = True
    cache.clock.advance(3600)
    answers.append(cache.api.get(f"/v2/{REPO}/manifests/1"))  # stale, logged
    assert answers[0].body == body and answers[2].header("Warning")
    secret = cache.upstream.password
    for answer in answers:
        assert secret not in answer.body.decode() and all(secret not in v for _, v in answer.headers)
    assert secret not in caplog.text
    # The CDN got no credentials: they go to the upstream's own origin only.
    assert all(e.authorization is None for e in cache.upstream.requests_to("/cdn/"))


def test_wrong_credentials_are_a_miss_not_a_leak(cache: Cached, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.upstream.add_image("team/app", "1", [b"x"])
    cache.upstream.password = "rotated"
    refused = cache.api.get(f"/v2/{REPO}/manifests/1")
    assert refused.status == 404 and "pull-secret" not in refused.body.decode()


def test_one_component_names_map_as_the_rule_says(registry: Registry, aws: AwsClients,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   upstream: UpstreamRegistry) -> None:
    digest, body = upstream.add_image("library/alpine", "3", [b"alpine"])
    with cached_registry(registry, aws, monkeypatch, upstream,
                         cache_rule(upstream, single_names="library/")) as cache:
        for name in (f"{PREFIX}alpine", f"{PREFIX}library/alpine"):
            served = cache.api.get(f"/v2/{name}/manifests/3")
            assert served.status == 200 and served.body == body, name
