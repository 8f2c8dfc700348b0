"""The cache's pure logic: the rules document, which rule a name falls under and what it is
called upstream, credentials text, and which addresses the copier may fetch from."""

from __future__ import annotations

import json

import pytest

from chalicelib.cache.counters import totals
from chalicelib.cache.rules import CacheConfig, CredentialSource, Rule, RulesError, parse_credentials, parse_rules
from chalicelib.cache.upstream import address_allowed


def config(document: dict[str, object]) -> CacheConfig:
    return CacheConfig.from_env({"BERTH_UPSTREAMS": json.dumps(document)})


def test_the_least_form_is_docker_hub_anonymous_with_defaults() -> None:
    (rule,) = config({"hub/": {"url": "https://registry-1.docker.io"}}).rules
    assert rule == Rule("hub/", "https://registry-1.docker.io", ttl_seconds=300, single_names="library/")
    assert rule.upstream_name("hub/alpine") == "library/alpine"
    assert rule.upstream_name("hub/library/alpine") == "library/alpine"
    assert rule.upstream_name("hub/bitnami/redis") == "bitnami/redis"


@pytest.mark.parametrize("url", ["https://docker.io", "https://index.docker.io/", "https://registry.hub.docker.com"])
def test_docker_hub_by_any_of_its_names_is_its_api_host(url: str) -> None:
    (rule,) = config({"hub/": {"url": url}}).rules
    assert rule.url == "https://registry-1.docker.io" and rule.single_names == "library/"


def test_every_option() -> None:
    (rule,) = config({"ghcr/": {"url": "https://GHCR.io", "ttl_seconds": 0, "expire_after_days": 30,
                                "single_names": "", "credentials": {"secret": "arn:aws:secretsmanager:x"}}}).rules
    assert rule == Rule("ghcr/", "https://ghcr.io", 0, 30.0, "", CredentialSource("secret", "arn:aws:secretsmanager:x"))
    assert rule.upstream_name("ghcr/one") == "one"


def test_the_longest_prefix_wins_and_null_keeps_a_prefix_our_own() -> None:
    rules = config({"": {"url": "https://registry-1.docker.io"}, "ghcr/": {"url": "https://ghcr.io"},
                    "ghcr/acme/": {"url": "https://ghcr.example.com"}, "team/": None})
    assert rules.rule_for("nginx") is not None and rules.rule_for("nginx").prefix == ""  # type: ignore[union-attr]
    assert rules.rule_for("ghcr/x/y").url == "https://ghcr.io"  # type: ignore[union-attr]
    assert rules.rule_for("ghcr/acme/y").url == "https://ghcr.example.com"  # type: ignore[union-attr]
    assert rules.rule_for("team/app") is None
    assert rules.rule_for("teamwork/app") is not None  # a prefix is a prefix of components, "team/" with its slash
    assert config({"hub/": {"url": "https://a.io"}}).rule_for("hubble/x") is None


def test_no_rules_no_cache() -> None:
    assert not CacheConfig.from_env({}).enabled
    assert not CacheConfig.from_env({"BERTH_UPSTREAMS": ""}).enabled


def test_the_document_can_be_a_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "upstreams.json"
    path.write_text(json.dumps({"quay/": {"url": "https://quay.io"}}))
    assert CacheConfig.from_env({"BERTH_UPSTREAMS": str(path)}).rules[0].url == "https://quay.io"
    with pytest.raises(RulesError, match="cannot be read"):
        CacheConfig.from_env({"BERTH_UPSTREAMS": str(path) + ".missing"})


@pytest.mark.parametrize(("document", "message"), [
    ("[]", "must map prefixes"),
    ("{", "not JSON"),
    ({"hub": {"url": "https://a.io"}}, "must end with '/'"),
    ({"Hub/": {"url": "https://a.io"}}, "repository name components"),
    ({"hub/": "https://a.io"}, "must be an object"),
    ({"hub/": {}}, "url must be"),
    ({"hub/": {"url": "ftp://a.io"}}, "url must be http"),
    ({"hub/": {"url": "https://a.io/v2"}}, "no path"),
    ({"hub/": {"url": "https://user:pw@a.io"}}, "no path, query or credentials"),
    ({"hub/": {"url": "https://a.io", "ttl": 5}}, "unknown keys"),
    ({"hub/": {"url": "https://a.io", "ttl_seconds": -1}}, "ttl_seconds"),
    ({"hub/": {"url": "https://a.io", "ttl_seconds": True}}, "ttl_seconds"),
    ({"hub/": {"url": "https://a.io", "expire_after_days": 0}}, "expire_after_days"),
    ({"hub/": {"url": "https://a.io", "single_names": "library"}}, "single_names"),
    ({"hub/": {"url": "https://a.io", "credentials": {"password": "x"}}}, "credentials must be"),
    ({"hub/": {"url": "https://a.io", "credentials": {"env": ""}}}, "non-empty"),
])
def test_mistakes_are_named(document: object, message: str) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    with pytest.raises(RulesError, match=message):
        parse_rules(text)


def test_credentials_text_in_either_form_and_never_quoted_back() -> None:
    assert parse_credentials("bot:s3cret:with:colons").password == "s3cret:with:colons"
    parsed = parse_credentials('{"username": "bot", "accessToken": "tok"}')
    assert (parsed.username, parsed.password) == ("bot", "tok")
    assert "tok" not in repr(parsed)
    for bad in ("no-colon-s3cret", '{"username": "bot"}', '{"s3cret"'):
        with pytest.raises(RulesError) as raised:
            parse_credentials(bad)
        assert "s3cret" not in str(raised.value)


@pytest.mark.parametrize(("address", "private_ok", "allowed"), [
    ("151.101.1.1", False, True),
    ("169.254.169.254", True, False),  # the instance metadata service, whatever the upstream
    ("fe80::1", True, False),
    ("::ffff:169.254.169.254", True, False),
    ("fd00:ec2::254", True, False),
    ("0.0.0.0", True, False),
    ("127.0.0.1", False, False),
    ("10.0.0.8", False, False),
    ("127.0.0.1", True, True),
    ("10.0.0.8", True, True),
])
def test_where_the_copier_may_follow_a_redirect(address: str, private_ok: bool, allowed: bool) -> None:
    assert address_allowed(address, private_ok) is allowed


def test_only_upstreams_on_private_addresses_may_redirect_there() -> None:
    assert Rule("a/", "http://127.0.0.1:5000").on_private_network
    assert Rule("a/", "http://10.1.2.3").on_private_network
    assert not Rule("a/", "https://ghcr.io").on_private_network


def test_counter_totals_sum_days_and_ignore_strangers() -> None:
    summed = totals({"2024-01-01": {"hits": 2, "bytes_saved": 10}, "2024-01-02": {"hits": 1, "other": 5}})
    assert summed["hits"] == 3 and summed["bytes_saved"] == 10 and "other" not in summed
