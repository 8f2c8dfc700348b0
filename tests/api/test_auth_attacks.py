"""A hostile user with an account, in token and Basic modes: each attack found against Berth
(issue 11), sent through API Gateway's authorizer and the handler as a client sends it."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import jwt
import pytest

from berth.cli import main
from chalicelib.api import authorizer
from chalicelib.auth import authenticator as authenticator_module
from chalicelib.auth.permissions import Grant, normalise_actions
from chalicelib.auth.secrets import hash_password, new_ci_token
from chalicelib.registry import Registry
from chalicelib.storage.accounts import TokenRecord
from tests.api.auth_support import PASSWORD, assert_challenge, assert_denied, basic, bearer, push_image, token_for
from tests.conftest import ApiClient

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
EVERY_ACTION = normalise_actions(["*"])
# Every character shell globs, fnmatch or regular expressions give a meaning to.
GLOB_NAMES = ["eve/ap*", "eve/ap?", "eve/[a-z]pp", "eve/[!x]*", "eve/ap\\p", "eve/{app,apx}", "eve/ap.+", "*",
              "eve/**", "eve/ap[p]"]


def as_user(registry: Registry, name: str, grants: dict[str, str], password: str = PASSWORD) -> None:
    registry.accounts.add_user(name, hash_password(password, rounds=4))
    for pattern, actions in grants.items():
        registry.accounts.grant(name, pattern, normalise_actions(actions.split(",")))


def seed(api: ApiClient, *repos: str) -> None:
    """Images pushed by alice, who may do everything."""
    for repo in repos:
        assert push_image(api, repo, basic("alice")).status == 201, repo


def oauth(api: ApiClient, form: str, source: str = "127.0.0.1") -> Any:
    return api.post("/token", headers=FORM, body=form.encode(), source=source)


def password_form(user: str, password: str = PASSWORD, scope: str = "repository:team/app:pull") -> str:
    return f"grant_type=password&username={user}&password={password.replace(' ', '+')}&service=berth" \
           f"&scope={scope}&access_type=offline"


# ---- 1. a name a client asks for is a name, never a pattern -----------------------------------

@pytest.mark.parametrize("name", GLOB_NAMES)
def test_a_scope_that_is_a_pattern_grants_nothing(api: ApiClient, auth_registry: Registry, name: str) -> None:
    as_user(auth_registry, "eve", {"eve/ap?": "pull,push"})
    seed(api, "eve/apple", "eve/app")
    scope = quote(f"repository:{name}:pull,push", safe="")
    response = api.get(f"/token?service=berth&scope={scope}", headers=basic("eve"))
    token = response.json()["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["access"] == [] and "grants" not in claims
    assert_denied(api.get("/v2/eve/apple/manifests/1", headers=bearer(token)))
    assert_denied(api.get("/v2/eve/app/manifests/1", headers=bearer(token)))
    assert_denied(push_image(api, "eve/apple", bearer(token), tag="evil"))
    # What eve was granted still works, asked for by name.
    own = token_for(api, ["repository:eve/app:pull,push"], user="eve")
    assert api.get("/v2/eve/app/manifests/1", headers=bearer(own)).status == 200
    assert_denied(api.get("/v2/eve/apple/manifests/1", headers=bearer(own)))


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
@pytest.mark.parametrize("pattern", ["frank/[!x]*", "frank/[a-z]pp", "frank/{app}", "frank/ap\\p"])
def test_a_grant_is_matched_with_two_wildcards_only(api: ApiClient, auth_registry: Registry, pattern: str) -> None:
    """Grants written before `berth user grant` refused other syntax stand for themselves."""
    auth_registry.accounts.add_user("frank", hash_password(PASSWORD, rounds=4))
    auth_registry.accounts.grant("frank", pattern, EVERY_ACTION)
    seed(api, "frank/app")
    refused = api.get("/v2/frank/app/manifests/1", headers=basic("frank"))
    assert refused.status in (401, 403) and refused.json()["errors"][0]["code"] == "DENIED"


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_a_name_with_glob_characters_never_reaches_a_grant(api: ApiClient, auth_registry: Registry) -> None:
    as_user(auth_registry, "eve", {"eve/*": "pull,push"})
    for name in GLOB_NAMES:
        response = api.get(f"/v2/{quote(name, safe='/')}/manifests/1", headers=basic("eve"))
        assert response.status == 400 and response.json()["errors"][0]["code"] == "NAME_INVALID", name


def test_berth_user_grant_refuses_patterns_it_does_not_mean(auth_registry: Registry,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    settings = auth_registry.settings
    where = ["--table", settings.table, "--bucket", settings.bucket, "--region", "us-east-1"]
    auth_registry.accounts.add_user("frank", hash_password(PASSWORD, rounds=4))
    for pattern in ("frank/[!x]*", "frank/{a,b}", "Frank/*"):
        assert main(["user", "grant", "frank", pattern, "pull", *where]) == 1
        assert "wildcards" in capsys.readouterr().err
    assert main(["user", "grant", "frank", "frank/ap?", "pull", *where]) == 0
    assert auth_registry.accounts.get_user("frank").grants == [Grant("frank/ap?", frozenset({"pull"}))]


# ---- 2. a change to an account holds on the next request ---------------------------------------

@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_a_new_password_holds_on_the_next_request(api: ApiClient, auth_registry: Registry) -> None:
    seed(api, "team/app")
    assert api.get("/v2/team/app/manifests/1", headers=basic("bob")).status == 200
    auth_registry.accounts.set_password("bob", hash_password("a new one", rounds=4))
    assert_challenge(api.get("/v2/team/app/manifests/1", headers=basic("bob")),
                     "Bearer " if auth_registry.settings.auth_mode == "token" else "Basic ")
    assert api.get("/v2/team/app/manifests/1", headers=basic("bob", "a new one")).status == 200
    if auth_registry.settings.auth_mode == "token":
        assert api.get("/token?service=berth", headers=basic("bob")).status == 401


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_a_removed_user_and_a_revoked_grant_hold_on_the_next_request(api: ApiClient, auth_registry: Registry) -> None:
    seed(api, "team/app")
    assert api.get("/v2/team/app/manifests/1", headers=basic("bob")).status == 200
    auth_registry.accounts.revoke("bob", "team/*")
    refused = api.get("/v2/team/app/manifests/1", headers=basic("bob"))
    assert refused.status in (401, 403) and refused.json()["errors"][0]["code"] == "DENIED"
    auth_registry.accounts.remove_user("bob")
    assert api.get("/v2/", headers=basic("bob")).status == 401
    if auth_registry.settings.auth_mode == "token":
        assert api.get("/token?service=berth", headers=basic("bob")).status == 401
        assert api.get("/token?service=berth", headers=basic("alice")).status == 200


# ---- 3. refresh tokens: bound to the account, its credential and the login ---------------------

def _refresh(api: ApiClient, refresh_token: str) -> Any:
    return oauth(api, f"grant_type=refresh_token&refresh_token={refresh_token}&service=berth"
                      "&scope=repository:team/app:pull")


def test_a_refresh_token_dies_with_the_password(api: ApiClient, auth_registry: Registry) -> None:
    issued = oauth(api, password_form("bob"))
    assert issued.status == 200, issued.body
    refresh_token = issued.json()["refresh_token"]
    assert _refresh(api, refresh_token).status == 200
    auth_registry.accounts.set_password("bob", hash_password("a new one", rounds=4))
    assert _refresh(api, refresh_token).status == 401


def test_a_refresh_token_is_not_the_next_account_of_the_same_name(api: ApiClient, auth_registry: Registry) -> None:
    refresh_token = oauth(api, password_form("bob")).json()["refresh_token"]
    auth_registry.accounts.remove_user("bob")
    as_user(auth_registry, "bob", {"*": "*"})  # same name and password, more grants
    refused = _refresh(api, refresh_token)
    assert refused.status == 401 and "token" not in refused.json()


def test_a_refresh_token_from_a_ci_token_dies_with_it(api: ApiClient, auth_registry: Registry) -> None:
    secret = new_ci_token()
    auth_registry.accounts.add_token(TokenRecord("bob", secret.id, secret.secret_hash, None, "ci", 0))
    refresh_token = oauth(api, password_form("bob", str(secret))).json()["refresh_token"]
    assert _refresh(api, refresh_token).status == 200
    auth_registry.accounts.remove_token("bob", secret.id)
    assert _refresh(api, refresh_token).status == 401


def test_refreshing_never_extends_the_login(api: ApiClient, auth_registry: Registry) -> None:
    auth_registry.settings = replace(auth_registry.settings, refresh_ttl=6)
    auth_registry.auth.settings = auth_registry.settings
    auth_registry.auth._issuer = None  # the issuer reads the settings it is built with
    first = oauth(api, password_form("bob")).json()["refresh_token"]
    time.sleep(1.1)  # so that a refresh which extended the login would show in `exp`
    second = _refresh(api, first).json()["refresh_token"]
    exp = [jwt.decode(t, options={"verify_signature": False})["exp"] for t in (first, second)]
    assert exp[0] == exp[1]  # the new one ends when the first did
    time.sleep(exp[1] - time.time() + 0.1)
    assert _refresh(api, second).status == 401


def test_an_access_token_never_outlives_an_expiring_ci_token(api: ApiClient, auth_registry: Registry) -> None:
    secret = new_ci_token()
    ends = int(time.time()) + 30
    auth_registry.accounts.add_token(TokenRecord("bob", secret.id, secret.secret_hash, ends, "ci", 0))
    body = api.get("/token?service=berth", headers=basic("bob", str(secret))).json()
    assert body["expires_in"] <= 30
    assert jwt.decode(body["token"], options={"verify_signature": False})["exp"] <= ends


# ---- 4. the catalog tells nothing of what the caller may not see -------------------------------

def _walk_catalog(api: ApiClient, headers: dict[str, str]) -> tuple[list[str], list[str]]:
    """Every name in the bodies, and every name any Link offered, following n=1 pages."""
    seen, linked = [], []
    path: str | None = "/v2/_catalog?n=1"
    while path:
        response = api.get(path, headers=headers)
        assert response.status == 200, response.body
        seen += response.json()["repositories"]
        link = response.header("Link")
        path = None
        if link:
            path = re.match(r"<([^>]+)>", link).group(1)  # type: ignore[union-attr]
            linked += parse_qs(urlsplit(path).query)["last"]
    return seen, linked


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_catalog_pages_and_links_hold_only_what_the_caller_may_see(api: ApiClient, auth_registry: Registry) -> None:
    hidden = [f"secret/r{i}" for i in range(6)]
    seed(api, "carol/a", *hidden, "carol/b", "team/app")
    as_user(auth_registry, "dave", {"nothing/*": "pull"})
    for user, expected in (("carol", ["carol/a", "carol/b"]), ("dave", []), ("bob", ["team/app"])):
        if auth_registry.settings.auth_mode == "token":
            headers = bearer(token_for(api, ["registry:catalog:*"], user=user))
        else:
            headers = basic(user)
        seen, linked = _walk_catalog(api, headers)
        assert seen == expected, user
        assert set(linked) <= set(expected), (user, linked)


# ---- 5. no user enumeration, and throttled guessing --------------------------------------------

def test_unknown_users_cost_the_same_password_check(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    checks: list[str] = []
    real = authenticator_module.check_password

    def counted(password: str, hashed: str) -> bool:
        checks.append(password)
        return real(password, hashed)

    monkeypatch.setattr(authenticator_module, "check_password", counted)
    answers = []
    for user in ("alice", "nobody-here"):
        checks.clear()
        response = api.get("/token?service=berth", headers=basic(user, "a wrong password"))
        answers.append((response.status, response.body))
        assert checks == ["a wrong password"], user  # one bcrypt check either way
    assert answers[0] == answers[1]


def test_failed_logins_are_throttled_per_user_name(api: ApiClient) -> None:
    for _ in range(10):  # ten wrong guesses are checked; the eleventh is not
        assert api.get("/token?service=berth", headers=basic("alice", "guess")).status == 401
    throttled = api.get("/token?service=berth", headers=basic("alice", "guess"))
    assert throttled.status == 429 and throttled.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert 0 < int(throttled.header("Retry-After")) <= 300
    # Until the window ends even the right password is not checked, from anywhere...
    assert api.get("/token?service=berth", headers=basic("alice"), source="198.51.100.7").status == 429
    # ...while other names are not affected.
    assert api.get("/token?service=berth", headers=basic("bob")).status == 200


def test_failed_logins_are_throttled_per_source_address(api: ApiClient) -> None:
    for i in range(30):
        assert api.get("/token?service=berth", headers=basic(f"ghost{i}", "guess"),
                       source="203.0.113.9").status == 401
    assert api.get("/token?service=berth", headers=basic("ghost-last", "guess"),
                   source="203.0.113.9").status == 429
    assert api.get("/token?service=berth", headers=basic("carol"), source="203.0.113.9").status == 429
    assert api.get("/token?service=berth", headers=basic("carol"), source="192.0.2.1").status == 200


@pytest.mark.parametrize("auth_registry", ["basic"], indirect=True)
def test_basic_mode_throttles_through_the_gateway(api: ApiClient) -> None:
    """The authorizer cannot answer 429; it lets the request through for the function to."""
    for _ in range(10):
        api.get("/v2/", headers=basic("alice", "guess"))
    throttled = api.get("/v2/", headers=basic("alice", "guess"))
    assert throttled.status == 429 and throttled.header("Retry-After")
    # A password this container already checked against the current hash is not a guess.
    assert api.get("/v2/", headers=basic("bob")).status == 200


def test_oauth_password_grant_is_throttled_too(api: ApiClient) -> None:
    for _ in range(10):
        oauth(api, password_form("carol", "guess"))
    assert oauth(api, password_form("carol")).status == 429


# ---- 8. the authorizer's result fits its limit, whatever the grants ---------------------------

@pytest.fixture
def hoarder(auth_registry: Registry) -> Iterator[str]:
    """A user with 100 grants, full and pull-only."""
    auth_registry.accounts.add_user("hoarder", hash_password(PASSWORD, rounds=4))
    for i in range(100):
        auth_registry.accounts.grant("hoarder", f"project{i:03d}/*", EVERY_ACTION if i % 2 else frozenset({"pull"}))
    yield "hoarder"


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_a_user_with_a_hundred_grants_logs_in_pushes_and_pulls(api: ApiClient, auth_registry: Registry,
                                                               hoarder: str) -> None:
    credentials = basic(hoarder)
    assert api.get("/v2/", headers=credentials).status == 200  # docker login
    if auth_registry.settings.auth_mode == "token":
        credentials = bearer(token_for(api, ["repository:project099/app:pull,push"], user=hoarder))
        assert api.get("/v2/", headers=bearer(token_for(api, [], user=hoarder))).status == 200
    assert push_image(api, "project099/app", credentials).status == 201
    assert api.get("/v2/project099/app/manifests/1", headers=credentials).status == 200
    result = authorizer.policy(auth_registry.auth, basic(hoarder)["Authorization"],
                               "arn:aws:execute-api:us-east-1:1:api/api/GET/v2/project099/app/manifests/1")
    assert len(str(result)) < 1024


def test_the_local_gateway_refuses_an_authorizer_result_over_8_kb(api: ApiClient,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def oversized(auth: Any, token: str, method_arn: str, source: str = "") -> dict[str, Any]:
        resources = [f"{method_arn}/{i:04d}" for i in range(200)] + [method_arn]
        return {"principalId": "x", "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resources}]}}

    monkeypatch.setattr(authorizer, "policy", oversized)
    response = api.get("/v2/", headers=basic("alice"))
    assert response.status == 500


# ---- 10. every 401 a client can see carries a challenge ----------------------------------------

@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_refusals_after_a_revocation_carry_the_challenge(api: ApiClient, auth_registry: Registry) -> None:
    seed(api, "team/app")
    assert api.get("/v2/team/app/manifests/1", headers=basic("bob")).status == 200
    auth_registry.accounts.set_password("bob", hash_password("rotated", rounds=4))
    for path in ("/v2/", "/v2/team/app/manifests/1", "/v2/team/app/blobs/uploads/"):
        response = api.get(path, headers=basic("bob"))
        assert response.status == 401
        assert response.header("WWW-Authenticate") and response.header("x-amzn-Remapped-WWW-Authenticate") is None


# ---- signing keys ------------------------------------------------------------------------------

def test_key_rotation_overlaps_then_ends(api: ApiClient, auth_registry: Registry,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    seed(api, "team/app")
    old = token_for(api, ["repository:team/app:pull"], user="bob")
    old_kid = jwt.get_unverified_header(old)["kid"]
    settings = auth_registry.settings
    where = ["--table", settings.table, "--bucket", settings.bucket, "--region", "us-east-1"]
    saved = dict(os.environ)
    try:
        assert main(["key", "rotate", "--overlap", "2", *where]) == 0
        assert main(["key", "list", *where]) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)
    listing = capsys.readouterr().out
    assert "signing" in listing and f"{old_kid}\t" in listing and "verifying until" in listing
    auth_registry.auth.keys.forget()  # as every container does within a minute
    new = token_for(api, ["repository:team/app:pull"], user="bob")
    assert jwt.get_unverified_header(new)["kid"] != old_kid
    for token in (old, new):  # the overlap
        assert api.get("/v2/team/app/manifests/1", headers=bearer(token)).status == 200
    time.sleep(2.1)
    assert_challenge(api.get("/v2/team/app/manifests/1", headers=bearer(old)), "Bearer ")
    assert api.get("/v2/team/app/manifests/1", headers=bearer(new)).status == 200
