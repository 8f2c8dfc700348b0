import pytest

from chalicelib.auth import challenge
from chalicelib.auth.permissions import CATALOG, Grant, Scope, granted, normalise_actions, parse_scope
from chalicelib.auth.secrets import check_password, hash_password, new_ci_token, parse_ci_token, same
from chalicelib.auth.tokens import InvalidToken, TokenIssuer

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


def test_tokens_verify_and_refuse() -> None:
    issuer = TokenIssuer(b"k" * 32, "berth", 60)
    scope = Scope("repository", "a", ("pull",))
    claims = issuer.verify(issuer.access_token("alice", [scope], [Scope("repository", "a", ("pull", "push"))]))
    assert claims.subject == "alice" and claims.allows(Scope("repository", "a", ("pull", "push"))) == ("pull",)
    assert claims.asked_for(scope, "push") and not claims.asked_for(Scope("repository", "b", ("pull",)), "pull")
    with pytest.raises(InvalidToken):
        TokenIssuer(b"j" * 32, "berth", 60).verify(issuer.access_token("alice", [], []))
    with pytest.raises(InvalidToken):
        TokenIssuer(b"k" * 32, "other", 60).verify(issuer.access_token("alice", [], []))
    with pytest.raises(InvalidToken):
        issuer.verify(issuer.refresh_token("alice"))
    assert issuer.verify(issuer.refresh_token("alice"), kind="refresh").subject == "alice"
    expired = TokenIssuer(b"k" * 32, "berth", -10)
    with pytest.raises(InvalidToken):
        issuer.verify(expired.access_token("alice", [], []))
