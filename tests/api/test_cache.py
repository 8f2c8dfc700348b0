"""The pull-through cache through the real handler, against an upstream over real HTTP: what a
client sees on first and later pulls, tags moving and the TTL, an upstream that is down or
lies, copies into S3 (once, resumed, checked), pushes refused, the counters."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import requests

from chalicelib.registry import Registry
from chalicelib.storage.clients import AwsClients
from tests.api.cache_support import PREFIX, Cached, cache_rule, cached_registry
from tests.api.upstream_registry import OCI_MANIFEST, UpstreamRegistry, digest_of

ACCEPT = {"Accept": f"{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json"}
REPO = f"{PREFIX}team/app"


@pytest.fixture
def upstream() -> Iterator[UpstreamRegistry]:
    with UpstreamRegistry(auth="token").running() as running:
        yield running


@pytest.fixture
def cache(registry: Registry, aws: AwsClients, monkeypatch: pytest.MonkeyPatch,
          upstream: UpstreamRegistry) -> Iterator[Cached]:
    with cached_registry(registry, aws, monkeypatch, upstream, cache_rule(upstream, ttl_seconds=60)) as wired:
        yield wired


def pull_manifest(cache: Cached, reference: str, repo: str = REPO, method: str = "GET") -> requests.Response:
    return cache.api.request(method, f"/v2/{repo}/manifests/{reference}", headers=ACCEPT)  # type: ignore[return-value]


def fetch(url: str) -> bytes:
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.content


# ---- manifests ------------------------------------------------------------------------------

def test_a_first_pull_by_tag_is_the_upstreams_manifest_byte_for_byte_and_a_second_asks_nothing(
        cache: Cached) -> None:
    digest, body = cache.upstream.add_image("team/app", "1", [b"layer one", b"layer two"])

    first = []
    requests_made = cache.upstream_requests(lambda: first.append(pull_manifest(cache, "1")))
    response = first[0]
    assert response.status == 200
    assert response.body == body
    assert response.header("Docker-Content-Digest") == digest
    assert response.header("Content-Type") == OCI_MANIFEST
    assert response.header("Cache-Status") == "berth; fwd=miss; stored"
    # The token flow: refused without a token, a token from the realm, then the manifest.
    assert requests_made == ["GET /v2/team/app/manifests/1", "GET /token", "GET /v2/team/app/manifests/1"]
    token_request = cache.upstream.requests_to("/token")[0]
    assert token_request.authorization and token_request.authorization.startswith("Basic ")

    again = []
    assert cache.upstream_requests(lambda: again.append(pull_manifest(cache, "1"))) == []
    assert again[0].body == body and again[0].header("Cache-Status") == "berth; hit; ttl=60"
    by_digest = []
    assert cache.upstream_requests(lambda: by_digest.append(pull_manifest(cache, digest))) == []
    assert by_digest[0].body == body and by_digest[0].header("Docker-Content-Digest") == digest


def test_head_answers_like_get_without_a_body(cache: Cached) -> None:
    digest, body = cache.upstream.add_image("team/app", "1", [b"x"])
    head = pull_manifest(cache, "1", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.header("Content-Length") == str(len(body)) and head.header("Docker-Content-Digest") == digest


def test_a_manifest_by_digest_is_cached_for_ever(cache: Cached) -> None:
    digest, body = cache.upstream.add_image("team/app", "1", [b"x"])
    assert pull_manifest(cache, digest).body == body
    cache.clock.advance(365 * 86_400)
    cache.upstream.down = True
    response = []
    assert cache.upstream_requests(lambda: response.append(pull_manifest(cache, digest))) == []
    assert response[0].status == 200 and response[0].body == body


def test_a_tag_moved_upstream_is_served_as_cached_until_the_ttl_then_revalidated_with_one_head(
        cache: Cached) -> None:
    old, _ = cache.upstream.add_image("team/app", "moving", [b"v1"])
    assert pull_manifest(cache, "moving").header("Docker-Content-Digest") == old

    new, new_body = cache.upstream.add_image("team/app", "moving", [b"v2"])
    cache.clock.advance(59)
    assert pull_manifest(cache, "moving").header("Docker-Content-Digest") == old  # fresh: not asked

    cache.clock.advance(2)
    moved = []
    made = cache.upstream_requests(lambda: moved.append(pull_manifest(cache, "moving")))
    assert made == ["HEAD /v2/team/app/manifests/moving", f"GET /v2/team/app/manifests/{new}"]
    assert moved[0].body == new_body and moved[0].header("Docker-Content-Digest") == new
    assert moved[0].header("Cache-Status") == "berth; fwd=stale; fwd-status=200; stored"

    cache.clock.advance(61)
    unchanged = []
    assert cache.upstream_requests(lambda: unchanged.append(pull_manifest(cache, "moving"))) == [
        "HEAD /v2/team/app/manifests/moving"]
    assert unchanged[0].header("Docker-Content-Digest") == new
    assert unchanged[0].header("Cache-Status") == "berth; fwd=stale; fwd-status=304"
    assert cache.upstream_requests(lambda: pull_manifest(cache, "moving")) == []  # fresh again


def test_when_the_upstream_is_down_a_stale_tag_is_served_and_says_so(cache: Cached) -> None:
    digest, body = cache.upstream.add_image("team/app", "1", [b"x"])
    pull_manifest(cache, "1")
    cache.upstream.down = True
    cache.clock.advance(90)
    stale = pull_manifest(cache, "1")
    assert stale.status == 200 and stale.body == body and stale.header("Docker-Content-Digest") == digest
    assert stale.header("Warning") == '110 berth "Response is Stale"'
    assert stale.header("Cache-Status") == 'berth; hit; ttl=-30; detail="upstream unavailable"'

    never_cached = pull_manifest(cache, "2")
    assert never_cached.status == 502
    assert never_cached.json()["errors"][0]["code"] == "UNKNOWN"

    cache.upstream.down, cache.upstream.rate_limited = False, True
    limited = pull_manifest(cache, "2")
    assert limited.status == 429 and limited.header("Retry-After") == "7"
    assert limited.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert pull_manifest(cache, "1").header("Warning")  # stale again, not refused


def test_a_tag_gone_upstream_is_gone_here_after_the_ttl(cache: Cached) -> None:
    cache.upstream.add_image("team/app", "1", [b"x"])
    pull_manifest(cache, "1")
    del cache.upstream.manifests[("team/app", "1")]
    cache.clock.advance(61)
    gone = pull_manifest(cache, "1")
    assert gone.status == 404 and gone.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert not [i for i in cache.items("cache#") if i["sk"] == "tag#1"]


def test_a_tag_the_upstream_refuses_after_the_ttl_is_served_stale_not_forgotten(cache: Cached) -> None:
    """Refused (401, 403) is not gone (404): revoked credentials must not empty the cache."""
    digest, body = cache.upstream.add_image("team/app", "1", [b"x"])
    pull_manifest(cache, "1")
    cache.upstream.password = "rotated"
    cache.upstream.tokens.clear()
    cache.clock.advance(61)
    stale = pull_manifest(cache, "1")
    assert stale.status == 200 and stale.body == body and stale.header("Warning")
    assert [i for i in cache.items("cache#") if i["sk"] == "tag#1"]


def test_a_manifest_that_does_not_match_its_digest_is_refused_and_nothing_is_cached(cache: Cached) -> None:
    digest, body = cache.upstream.add_image("team/app", "1", [b"x"])
    cache.upstream.lies[digest] = body.replace(b'"layers"', b'"layers" ')
    for reference in ("1", digest):
        refused = pull_manifest(cache, reference)
        assert refused.status == 502, reference
        error = refused.json()["errors"][0]
        assert error["code"] == "DIGEST_INVALID" and error["detail"]["expected"] == digest
    assert cache.items() == [] and cache.cached_objects() == []


def test_a_manifest_that_is_not_one_is_refused(cache: Cached) -> None:
    cache.upstream.add_manifest("team/app", b'{"schemaVersion": 1, "name": "x"}',
                                "application/vnd.docker.distribution.manifest.v1+prettyjws", "old")
    refused = pull_manifest(cache, "old")
    assert refused.status == 502 and refused.json()["errors"][0]["code"] == "MANIFEST_INVALID"
    assert cache.items() == []


def test_unknown_images_are_404(cache: Cached) -> None:
    assert pull_manifest(cache, "nope").status == 404
    missing = cache.api.get(f"/v2/{REPO}/blobs/{digest_of(b'nothing')}")
    assert missing.status == 404 and missing.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_a_multi_arch_index_and_its_platform_manifests(cache: Cached) -> None:
    amd, amd_body = cache.upstream.add_image("team/app", "amd", [b"amd layer"])
    arm, arm_body = cache.upstream.add_image("team/app", "arm", [b"arm layer"])
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": d, "size": len(b), "platform": {"architecture": a, "os": "linux"}}
        for d, b, a in ((amd, amd_body, "amd64"), (arm, arm_body, "arm64"))]}).encode()
    index_digest = cache.upstream.add_manifest("team/app", index, "application/vnd.oci.image.index.v1+json", "multi")
    served = pull_manifest(cache, "multi")
    assert served.body == index and served.header("Docker-Content-Digest") == index_digest
    assert pull_manifest(cache, arm).body == arm_body
    # A client that takes only image manifests cannot be given an index.
    only_images = cache.api.get(f"/v2/{REPO}/manifests/multi", headers={"Accept": OCI_MANIFEST})
    assert only_images.status == 404


# ---- blobs ------------------------------------------------------------------------------------

def test_a_first_blob_get_redirects_to_the_upstreams_storage_and_a_later_one_to_s3(cache: Cached) -> None:
    layer = os.urandom(300_000)
    cache.upstream.add_image("team/app", "1", [layer])
    digest = digest_of(layer)

    first = cache.api.get(f"/v2/{REPO}/blobs/{digest}")
    assert first.status == 307
    location = first.header("Location")
    assert location.startswith(f"http://localhost:{cache.upstream.port}/cdn/")  # the upstream's own
    assert first.header("Docker-Content-Digest") == digest
    assert fetch(location) == layer
    assert cache.queued() == 1

    assert cache.copy() == 1
    assert cache.cached_objects() and cache.queued() == 0
    later = []
    assert cache.upstream_requests(lambda: later.append(cache.api.get(f"/v2/{REPO}/blobs/{digest}"))) == []
    assert later[0].status == 307 and "localhost" not in later[0].header("Location")
    assert fetch(later[0].header("Location")) == layer
    head = cache.api.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.status == 200 and head.header("Content-Length") == str(len(layer))


def test_a_blob_cached_for_one_repository_is_served_to_another_only_once_the_upstream_confirms_it(
        cache: Cached) -> None:
    layer = os.urandom(1000)
    cache.upstream.add_image("team/app", "1", [layer])
    digest = digest_of(layer)
    cache.api.get(f"/v2/{REPO}/blobs/{digest}")
    cache.copy()
    # Another repository upstream that does not hold it: no bytes, whoever cached them.
    refused = cache.api.get(f"/v2/{PREFIX}team/other/blobs/{digest}")
    assert refused.status == 404
    cache.upstream.add_image("team/other", "1", [layer])
    confirmed = []
    made = cache.upstream_requests(lambda: confirmed.append(cache.api.get(f"/v2/{PREFIX}team/other/blobs/{digest}")))
    assert made == [f"HEAD /v2/team/other/blobs/{digest}"]  # confirmed, then served from S3
    assert fetch(confirmed[0].header("Location")) == layer


def test_concurrent_first_pulls_make_one_copy(cache: Cached, registry: Registry) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import ApiClient
    from tests.helpers import load_app

    layer = os.urandom(200_000)
    cache.upstream.add_image("team/app", "1", [layer])
    digest = digest_of(layer)
    # Lambda containers of their own (a Chalice app serves one request at a time).
    apps = [ApiClient(load_app(cache.registry)) for _ in range(6)]
    with ThreadPoolExecutor(len(apps)) as pool:
        answers = list(pool.map(lambda client: client.get(f"/v2/{REPO}/blobs/{digest}"), apps))
    assert [a.status for a in answers] == [307] * len(apps)
    assert cache.queued() == 1
    cache.copy()
    assert len(cache.cached_objects()) == 1
    totals = cache.registry.cache.store.counts() if cache.registry.cache else {}
    assert sum(day.get("copies", 0) for day in totals.values()) == 1


def test_bytes_that_do_not_match_the_digest_are_not_cached(cache: Cached) -> None:
    layer = os.urandom(5000)
    cache.upstream.add_image("team/app", "1", [layer])
    digest = digest_of(layer)
    cache.upstream.lies[digest] = os.urandom(5000)
    assert cache.api.get(f"/v2/{REPO}/blobs/{digest}").status == 307  # the client checks what it gets
    cache.copy()
    assert cache.cached_objects() == []
    (record,) = [i for i in cache.items("cacheblob#")]
    assert record["state"] == "failed" and record["failure"] == "digest"
    # Later pulls still go upstream, never to bytes the cache refused.
    again = cache.api.get(f"/v2/{REPO}/blobs/{digest}")
    assert again.status == 307 and "localhost" in again.header("Location")


def test_push_and_delete_under_a_cached_prefix_are_denied(cache: Cached) -> None:
    digest, _ = cache.upstream.add_image("team/app", "1", [b"x"])
    for method, path in (("POST", f"/v2/{REPO}/blobs/uploads/"),
                         ("PUT", f"/v2/{REPO}/manifests/2"),
                         ("DELETE", f"/v2/{REPO}/manifests/{digest}"),
                         ("DELETE", f"/v2/{REPO}/blobs/{digest}"),
                         ("GET", f"/v2/{REPO}/blobs/uploads/abc")):
        refused = cache.api.request(method, path, body=b"{}" if method == "PUT" else b"")
        assert refused.status == 403, (method, path)
        assert refused.json()["errors"][0]["code"] == "DENIED"
    # Outside the prefix the registry is itself.
    assert cache.api.post("/v2/team/app/blobs/uploads/").status == 202
