"""Around the pulls: referrers and tag lists of cached repositories, eviction by last pull, the
counters `berth stats` shows, and pulling through with auth on (pull on a cached prefix is all
a pull through needs)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import replace

import pytest

from chalicelib.auth.permissions import normalise_actions
from chalicelib.auth.secrets import hash_password
from chalicelib.cache.counters import totals
from chalicelib.registry import Registry
from chalicelib.storage.clients import AwsClients
from tests.api.cache_support import PREFIX, Cached, cache_rule, cached_registry
from tests.api.upstream_registry import OCI_INDEX, OCI_MANIFEST, UpstreamRegistry, digest_of
from tests.conftest import ApiClient
from tests.helpers import load_app

REPO = f"{PREFIX}team/app"
DAY = 86_400


@pytest.fixture
def upstream() -> Iterator[UpstreamRegistry]:
    with UpstreamRegistry(auth="token", referrers={}).running() as running:
        yield running


@pytest.fixture
def cache(registry: Registry, aws: AwsClients, monkeypatch: pytest.MonkeyPatch,
          upstream: UpstreamRegistry) -> Iterator[Cached]:
    rule = cache_rule(upstream, ttl_seconds=60, expire_after_days=7)
    with cached_registry(registry, aws, monkeypatch, upstream, rule) as wired:
        yield wired


def signature(upstream: UpstreamRegistry, subject: str, size: int, artifact_type: str) -> dict[str, object]:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                       "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(b"{}"),
                                  "size": 2},
                       "layers": [], "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": size}}).encode()
    digest = upstream.add_manifest("team/app", body, OCI_MANIFEST)
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body), "artifactType": artifact_type}


def test_referrers_come_from_the_upstream_filtered_here_and_cached_like_a_tag(cache: Cached) -> None:
    subject, body = cache.upstream.add_image("team/app", "1", [b"x"])
    sig = signature(cache.upstream, subject, len(body), "application/vnd.example.sig")
    sbom = signature(cache.upstream, subject, len(body), "application/vnd.example.sbom")
    assert cache.upstream.referrers is not None
    cache.upstream.referrers[("team/app", subject)] = [sig, sbom]

    listed = cache.api.get(f"/v2/{REPO}/referrers/{subject}")
    assert listed.status == 200 and listed.header("Content-Type") == OCI_INDEX
    assert listed.json()["manifests"] == [sig, sbom]
    filtered = cache.api.get(f"/v2/{REPO}/referrers/{subject}?artifactType=application/vnd.example.sig")
    assert filtered.json()["manifests"] == [sig] and filtered.header("OCI-Filters-Applied") == "artifactType"
    assert cache.upstream_requests(lambda: cache.api.get(f"/v2/{REPO}/referrers/{subject}")) == []
    # The signature itself pulls through like any manifest.
    assert cache.api.get(f"/v2/{REPO}/manifests/{sig['digest']}").status == 200
    cache.upstream.down = True
    cache.clock.advance(61)
    assert cache.api.get(f"/v2/{REPO}/referrers/{subject}").json()["manifests"] == [sig, sbom]  # stale


def test_without_a_referrers_api_the_fallback_tag_is_read(cache: Cached) -> None:
    cache.upstream.referrers = None
    subject, body = cache.upstream.add_image("team/app", "1", [b"x"])
    assert cache.api.get(f"/v2/{REPO}/referrers/{subject}").json()["manifests"] == []
    sig = signature(cache.upstream, subject, len(body), "application/vnd.example.sig")
    fallback = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [sig]}).encode()
    cache.upstream.add_manifest("team/app", fallback, OCI_INDEX, subject.replace(":", "-"))
    cache.clock.advance(61)
    assert cache.api.get(f"/v2/{REPO}/referrers/{subject}").json()["manifests"] == [sig]


def test_tag_lists_are_the_upstreams_under_the_cached_name(cache: Cached) -> None:
    for tag in ("1", "2", "latest"):
        cache.upstream.add_image("team/app", tag, [tag.encode()])
    listed = cache.api.get(f"/v2/{REPO}/tags/list")
    assert listed.status == 200 and listed.json() == {"name": REPO, "tags": ["1", "2", "latest"]}
    assert cache.api.get(f"/v2/{PREFIX}team/none/tags/list").status == 404


def test_content_not_pulled_for_the_rules_expiry_is_evicted(cache: Cached) -> None:
    assert cache.registry.cache is not None
    eviction = cache.registry.cache.eviction
    old_digest, _ = cache.upstream.add_image("team/app", "old", [b"old layer"])
    new_digest, _ = cache.upstream.add_image("team/app", "new", [b"new layer"])
    for tag, layer in (("old", b"old layer"), ("new", b"new layer")):
        cache.api.get(f"/v2/{REPO}/manifests/{tag}")
        cache.api.get(f"/v2/{REPO}/blobs/{digest_of(layer)}")
    cache.copy()
    assert len(cache.cached_objects()) == 2

    cache.clock.advance(5 * DAY)
    cache.api.get(f"/v2/{REPO}/manifests/new")  # a host with the layers pulls only the manifest
    cache.clock.advance(3 * DAY)
    assert eviction.due()
    report = eviction.run(lambda: False)
    assert report.complete and report.blobs == 1 and report.bytes == len(b"old layer")
    kept = {(i["pk"], i["sk"]) for i in cache.items()}
    assert (f"cache#{REPO}", "tag#new") in kept and (f"cache#{REPO}", "tag#old") not in kept
    assert f"cacheblob#{digest_of(b'new layer')}" in {pk for pk, _ in kept}
    assert f"cacheblob#{digest_of(b'old layer')}" not in {pk for pk, _ in kept}
    assert len(cache.cached_objects()) == 1
    assert not eviction.due()  # the next run is a day away
    # Evicted is only a miss: the old image pulls through again.
    again = cache.api.get(f"/v2/{REPO}/manifests/old")
    assert again.status == 200 and again.header("Docker-Content-Digest") == old_digest


def test_eviction_stops_and_carries_on(cache: Cached) -> None:
    assert cache.registry.cache is not None
    for n in range(5):
        cache.upstream.add_image("team/app", str(n), [b"x"])
        cache.api.get(f"/v2/{REPO}/manifests/{n}")
    cache.clock.advance(8 * DAY)
    eviction = replace(cache.registry.cache, eviction=type(cache.registry.cache.eviction)(
        cache.registry.cache.config, cache.store, cache.registry.blobs, cache.registry.cache.counters,
        cache.clock, page_size=2)).eviction
    partial = eviction.run(lambda: True)
    assert not partial.complete and eviction.due()
    rest = eviction.run(lambda: False)
    assert rest.complete and partial.items + rest.items == 10  # a tag and a manifest each
    assert cache.items() == []


def test_the_counters_add_up(cache: Cached) -> None:
    layer = os.urandom(10_000)
    digest, body = cache.upstream.add_image("team/app", "1", [layer])
    cache.api.get(f"/v2/{REPO}/manifests/1")  # miss: 401, token, manifest
    cache.api.get(f"/v2/{REPO}/manifests/1")  # hit
    cache.api.get(f"/v2/{REPO}/blobs/{digest_of(layer)}")  # miss: GET (a redirect to the CDN)
    cache.copy()  # GET (token cached), CDN
    cache.api.get(f"/v2/{REPO}/blobs/{digest_of(layer)}")  # hit
    counted = totals(cache.store.counts())
    assert counted["hits"] == 2 and counted["misses"] == 2
    assert counted["bytes_saved"] == len(body) + len(layer)
    assert counted["upstream_requests"] == len(cache.upstream.log)
    assert counted["copies"] == 1 and counted["bytes_copied"] == len(layer)


def test_with_auth_on_pull_on_the_cached_prefix_is_what_a_pull_through_needs(
        cache: Cached, aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_AUTH", "basic")
    digest, body = cache.upstream.add_image("team/app", "1", [b"x"])
    secured = Registry.build(replace(cache.registry.settings, auth_mode="basic"), aws)
    api = ApiClient(load_app(secured))
    secured.accounts.add_user("reader", hash_password("pw", rounds=4))
    secured.accounts.grant("reader", f"{PREFIX}*", normalise_actions(["pull"]))
    secured.accounts.add_user("other", hash_password("pw", rounds=4))
    secured.accounts.grant("other", "team/*", normalise_actions(["*"]))

    def as_user(user: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:pw".encode()).decode()}

    assert api.get(f"/v2/{REPO}/manifests/1", headers=as_user("reader")).body == body
    assert api.get(f"/v2/{REPO}/manifests/1", headers=as_user("other")).status == 403
    assert api.get(f"/v2/{REPO}/manifests/1").status == 401
    # Even everything granted cannot push where the upstream is the source of truth.
    secured.accounts.grant("other", "*", normalise_actions(["*"]))
    push = api.post(f"/v2/{REPO}/blobs/uploads/", headers=as_user("other"))
    assert push.status == 403 and push.json()["errors"][0]["code"] == "DENIED"


def test_berth_stats_and_berth_cache_collect(cache: Cached, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The commands, on this registry's table and bucket, with the rules as the registry has them."""
    from berth.cli import main

    cache.upstream.add_image("team/app", "1", [b"layer"])
    cache.api.get(f"/v2/{REPO}/manifests/1")
    cache.api.get(f"/v2/{REPO}/manifests/1")
    where = ["--table", cache.registry.settings.table, "--bucket", cache.registry.settings.bucket]
    assert main(["stats", *where]) == 0
    assert "1 hits, 1 misses" in capsys.readouterr().out

    # The items were last pulled on the test's clock, years before now: past any expiry.
    monkeypatch.setenv("BERTH_UPSTREAMS", json.dumps({PREFIX: {"url": cache.upstream.url, "expire_after_days": 7}}))
    assert main(["cache", "collect", "--dry-run", *where]) == 0
    assert "would evict: 2 tags, manifests, links and referrer lists" in capsys.readouterr().out
    assert len(cache.items()) == 2
    assert main(["cache", "collect", *where]) == 0
    assert "evicted: 2" in capsys.readouterr().out and cache.items() == []
    monkeypatch.delenv("BERTH_UPSTREAMS")
    assert main(["cache", "collect", *where]) == 1  # no rules: nothing to go by
