import time
from collections.abc import Callable
from dataclasses import replace

import jwt
import pytest

from chalicelib.auth import challenge, throttle
from chalicelib.auth.keys import KeyRing, SigningKey
from chalicelib.auth.permissions import (
    ACTIONS,
    CATALOG,
    Grant,
    Scope,
    check_pattern,
    granted,
    normalise_actions,
    parse_scope,
)
from chalicelib.auth.secrets import check_password, hash_password, new_ci_token, parse_ci_token, same
from chalicelib.auth.tokens import Claims, InvalidToken, RefreshBinding, TokenIssuer

GRANTS = [Grant("team/*", frozenset({"pull"})), Grant("team/app", frozenset({"push"})),
          Grant("lib/ubuntu", normalise_actions(["*"]))]


@pytest.mark.parametrize(
    "scope, expected",
    [
        ("repository:team/app:pull,push,delete", ("pull", "push")),
        ("repository:team/a/b:pull,push", ("pull",)),
        ("repository:teams/app:pull", ()),
        ("repository:lib/ubuntu:*", ("pull", "push", "delete")),
        ("repository:lib/ubuntu2:pull", ()),
    ],
)
def test_granted(scope: str, expected: tuple[str, ...]) -> None:
    parsed = parse_scope(scope)
    assert parsed is not None and granted(GRANTS, parsed) == expected


def test_catalog_needs_some_pull_grant() -> None:
    assert granted(GRANTS, CATALOG) == ("*",)
    assert granted([Grant("x", frozenset({"push"}))], CATALOG) == ()


@pytest.mark.parametrize("text", ["repository:a:pull", "repository:a/b:pull,push", "registry:catalog:*",
                                  "repository(plugin):a:pull", "repository:host:5000/a:pull"])
def test_parse_scope(text: str) -> None:
    assert parse_scope(text) is not None


@pytest.mark.parametrize("text", ["", "repository", "repository:a", "user:a:pull", "repository::pull",
                                  "repository:a:PULL"])
def test_malformed_scopes_are_ignored(text: str) -> None:
    assert parse_scope(text) is None


def test_scope_text_round_trips() -> None:
    assert str(Scope("repository", "a/b", ("pull", "push"))) == "repository:a/b:pull,push"


def test_challenges() -> None:
    assert challenge.bearer("https://r/token", "berth", "repository:a:pull", "insufficient_scope") == (
        'Bearer realm="https://r/token",service="berth",scope="repository:a:pull",error="insufficient_scope"')
    assert challenge.basic("berth") == 'Basic realm="berth",charset="UTF-8"'


def test_passwords_hash_and_check_beyond_72_bytes() -> None:
    long_password = "x" * 100
    hashed = hash_password(long_password, rounds=4)
    assert check_password(long_password, hashed)
    assert not check_password("x" * 99, hashed)
    assert not check_password("anything", "not a bcrypt hash")


def test_ci_tokens_parse_and_compare() -> None:
    token = new_ci_token()
    parsed = parse_ci_token(str(token))
    assert parsed == token and parsed is not None and same(parsed.secret_hash, token.secret_hash)
    assert parse_ci_token("berth_short_x") is None and parse_ci_token("password") is None


def _ring(*keys: SigningKey) -> Callable[[bool], KeyRing]:
    return lambda again=False: KeyRing(keys)


K = SigningKey("k1", b"k" * 32, 0)


def test_tokens_verify_and_refuse() -> None:
    issuer = TokenIssuer(_ring(K), "berth", 60, 3600)
    scope = Scope("repository", "a", ("pull",))
    token, lifetime = issuer.access_token("alice", [scope])
    claims = issuer.verify(token)
    assert lifetime == 60 and jwt.get_unverified_header(token)["kid"] == "k1"
    assert claims.subject == "alice" and claims.allows(Scope("repository", "a", ("pull", "push"))) == ("pull",)
    with pytest.raises(InvalidToken):  # same id, other key
        TokenIssuer(_ring(SigningKey("k1", b"j" * 32, 0)), "berth", 60, 3600).verify(token)
    with pytest.raises(InvalidToken):
        TokenIssuer(_ring(K), "other", 60, 3600).verify(token)
    binding = RefreshBinding("uid1", "password:0", int(time.time()))
    with pytest.raises(InvalidToken):
        issuer.verify(issuer.refresh_token("alice", binding))
    refreshed = issuer.verify(issuer.refresh_token("alice", binding), kind="refresh")
    assert (refreshed.subject, refreshed.uid, refreshed.credential) == ("alice", "uid1", "password:0")
    assert refreshed.expires == binding.auth_time + 3600
    with pytest.raises(InvalidToken):
        issuer.verify(TokenIssuer(_ring(K), "berth", -10, 3600).access_token("alice", [])[0])
    assert issuer.access_token("alice", [], not_after=int(time.time()) + 5)[1] <= 5


@pytest.mark.parametrize("name", ["eve/ap*", "eve/ap?", "eve/[a]pp", "eve/[!x]*", "eve/app\\", "*", "eve/**",
                                  "EVE/app", "eve/app/", "eve/app:tag"])
def test_a_scope_that_is_not_a_name_grants_nothing(name: str) -> None:
    """A requested name is compared, never matched; only grants are patterns."""
    grants = [Grant("eve/ap?", frozenset(ACTIONS)), Grant("eve/*", frozenset(ACTIONS)), Grant("*", frozenset(ACTIONS))]
    assert granted(grants, Scope("repository", name, ("pull",))) == ()
    claims = Claims("eve", {("repository", name): frozenset(ACTIONS)}, "access", tuple(grants))
    assert claims.allows(Scope("repository", name, ("pull",))) == ()


@pytest.mark.parametrize("pattern, name, covers", [
    ("eve/ap?", "eve/app", True), ("eve/ap?", "eve/apps", False), ("team/*", "team/a/b", True),
    ("frank/[!x]*", "frank/app", False), ("frank/[!x]*", "frank/[!x]y", True),
    ("a.b", "axb", False), ("lib/ubuntu", "lib/ubuntu", True), ("lib/ubuntu", "lib/ubuntu2", False),
])
def test_grant_patterns_have_two_wildcards_only(pattern: str, name: str, covers: bool) -> None:
    assert Grant(pattern, frozenset({"pull"})).covers(name) is covers


@pytest.mark.parametrize("pattern", ["team/*", "*", "eve/ap?", "lib/ubuntu", "a.b-c_d/e"])
def test_grant_patterns_accepted(pattern: str) -> None:
    assert check_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["frank/[!x]*", "team/{a,b}", "Team/*", "a\\b", "", "a b", "x" * 256])
def test_grant_patterns_refused(pattern: str) -> None:
    with pytest.raises(ValueError):
        check_pattern(pattern)


def test_a_token_asked_for_no_scope_matches_grants_not_names() -> None:
    claims = Claims("bob", {}, "access", (Grant("team/*", frozenset({"pull"})),))
    assert claims.allows(Scope("repository", "team/app", ("pull", "push"))) == ("pull",)
    assert claims.allows(Scope("repository", "team/*", ("pull",))) == ()


def test_key_rotation_keeps_old_keys_for_the_overlap_only() -> None:
    first = KeyRing((SigningKey("old", b"o" * 32, 0),))
    rotated = first.rotated(now=1000, overlap_seconds=60)
    assert rotated.current.kid != "old" and rotated.current.retire_at is None
    old = rotated.find("old")
    assert old is not None and old.verifies_at(1059) and not old.verifies_at(1060)
    again = rotated.rotated(now=2000, overlap_seconds=60)  # "old" was past its end: dropped
    assert [k.kid for k in again.keys] == [again.current.kid, rotated.current.kid]
    assert KeyRing.from_json(again.to_json()) == again
    legacy = KeyRing.from_secret_string("plain-secret")
    assert legacy.find(None) == legacy.current and legacy.current.key == b"plain-secret"


def test_issuer_finds_a_new_key_by_asking_again_and_refuses_a_retired_one() -> None:
    asked: list[bool] = []
    rings = [KeyRing((K,)), KeyRing((SigningKey("k2", b"2" * 32, 0), replace(K, retire_at=1)))]

    def keys(again: bool = False) -> KeyRing:
        asked.append(again)
        return rings[1] if again else rings[0]

    newer = TokenIssuer(lambda again=False: rings[1], "berth", 60, 3600).access_token("alice", [])[0]
    issuer = TokenIssuer(keys, "berth", 60, 3600)
    assert issuer.verify(newer).subject == "alice" and True in asked
    retired = TokenIssuer(_ring(K), "berth", 60, 3600).access_token("alice", [])[0]
    rings[0] = rings[1]
    with pytest.raises(InvalidToken):
        issuer.verify(retired)


def test_throttle_windows() -> None:
    limit = throttle.Limit("user", 3, 300)
    assert limit.window(600.0) == (2, 300) and limit.window(899.5) == (2, 1)
    counters = throttle.counters("alice", "10.0.0.1")
    assert [c.limit.kind for c in counters] == ["user", "source"]
    assert "alice" not in counters[0].key(0)[0]  # names are stored hashed
    assert throttle.counters("alice", "")[0].key(0) == counters[0].key(0) and len(throttle.counters("a", "")) == 1
