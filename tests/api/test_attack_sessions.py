"""Revocation, refresh tokens and signing keys, attacked after issue 11: a change to an account
holds on the very next request that presents a password, CI token or refresh token; refresh
and access tokens never stand in for each other; only a token our current (or overlapping)
key signed with HS256, naming that key, is ever accepted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest

from chalicelib.auth.secrets import new_ci_token
from chalicelib.registry import Registry
from chalicelib.storage.accounts import TokenRecord
from chalicelib.storage.clients import AwsClients
from tests.api.auth_support import PASSWORD, assert_challenge, assert_denied, basic, bearer, token_for
from tests.api.test_auth_attacks import as_user, oauth, password_form, seed
from tests.conftest import ApiClient
from tests.helpers import AwsCallCounter


def refresh(api: ApiClient, refresh_token: str, scope: str = "repository:team/app:pull") -> Any:
    return oauth(api, f"grant_type=refresh_token&refresh_token={refresh_token}&service=berth&scope={scope}")


def logged_in(api: ApiClient, user: str = "bob", password: str = PASSWORD) -> dict[str, Any]:
    """The OAuth2 password grant with a refresh token, as containerd asks for it."""
    issued = oauth(api, password_form(user, password))
    assert issued.status == 200, issued.body
    return dict(issued.json())


def dynamodb_requests(aws: AwsClients, action: Any) -> list[tuple[str, dict[str, Any]]]:
    """The DynamoDB operations `action` makes, each with the parameters it sends."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, dict(params)))

    aws.dynamodb.meta.events.register("provide-client-params.dynamodb.*", record)
    try:
        action()
    finally:
        aws.dynamodb.meta.events.unregister("provide-client-params.dynamodb.*", record)
    return sent


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


# ---- refresh and access tokens ------------------------------------------------------------------

def test_refresh_and_access_tokens_never_stand_in_for_each_other(api: ApiClient) -> None:
    seed(api, "team/app")
    tokens = logged_in(api)
    for path in ("/v2/", "/v2/team/app/manifests/1"):
        assert_challenge(api.get(path, headers=bearer(tokens["refresh_token"])), "Bearer ")
        assert_challenge(api.get(path, headers=basic("bob", tokens["refresh_token"])), "Bearer ")
    refused = refresh(api, tokens["access_token"])
    assert refused.status == 401 and "token" not in refused.json() and "access_token" not in refused.json()
    for credentials in (basic("bob", tokens["refresh_token"]), bearer(tokens["refresh_token"])):
        assert api.get("/token?service=berth", headers=credentials).status == 401
    assert api.get("/v2/team/app/manifests/1", headers=bearer(tokens["access_token"])).status == 200


def test_a_refresh_carries_the_grants_of_now_not_of_the_login(api: ApiClient, auth_registry: Registry) -> None:
    seed(api, "team/app", "carol/a")
    tokens = logged_in(api)
    auth_registry.accounts.revoke("bob", "team/*")
    narrowed = refresh(api, tokens["refresh_token"])
    assert narrowed.status == 200
    assert _claims(narrowed.json()["access_token"])["access"] == []
    assert_denied(api.get("/v2/team/app/manifests/1", headers=bearer(narrowed.json()["access_token"])))
    unscoped = refresh(api, narrowed.json()["refresh_token"], scope="")
    assert "grants" not in _claims(unscoped.json()["access_token"])  # bob holds no grant now
    auth_registry.accounts.grant("bob", "carol/*", frozenset({"pull"}))
    widened = refresh(api, tokens["refresh_token"], scope="").json()["access_token"]
    assert _claims(widened)["grants"] == [{"pattern": "carol/*", "actions": ["pull"]}]
    assert api.get("/v2/carol/a/manifests/1", headers=bearer(widened)).status == 200
    assert_denied(api.get("/v2/team/app/manifests/1", headers=bearer(widened)))


def test_a_refresh_token_dies_with_its_user(api: ApiClient, auth_registry: Registry) -> None:
    tokens = logged_in(api)
    assert refresh(api, tokens["refresh_token"]).status == 200
    auth_registry.accounts.remove_user("bob")
    refused = refresh(api, tokens["refresh_token"])
    assert refused.status == 401 and refused.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_a_refresh_token_from_a_ci_token_ends_when_the_ci_token_does(api: ApiClient,
                                                                     auth_registry: Registry) -> None:
    secret = new_ci_token()
    ends = int(time.time()) + 3600
    record = TokenRecord("bob", secret.id, secret.secret_hash, ends, "ci", int(time.time()))
    auth_registry.accounts.add_token(record)
    tokens = logged_in(api, password=str(secret))
    refreshed = refresh(api, tokens["refresh_token"])
    assert refreshed.status == 200 and _claims(refreshed.json()["access_token"])["exp"] <= ends
    # The same CI token, now past its expiry (as if its day had come).
    auth_registry.accounts.remove_token("bob", secret.id)
    auth_registry.accounts.add_token(TokenRecord("bob", secret.id, secret.secret_hash, int(time.time()) - 1, "ci", 0))
    assert refresh(api, tokens["refresh_token"]).status == 401
    assert api.get("/token?service=berth", headers=basic("bob", str(secret))).status == 401


def test_a_key_retired_at_once_ends_access_and_refresh_tokens(api: ApiClient, auth_registry: Registry) -> None:
    seed(api, "team/app")
    tokens = logged_in(api)
    auth_registry.signing_keys.rotate(overlap_seconds=0)  # `berth key rotate --overlap 0`
    auth_registry.auth.keys.forget()  # as every container does within a minute
    assert_challenge(api.get("/v2/team/app/manifests/1", headers=bearer(tokens["access_token"])), "Bearer ")
    assert refresh(api, tokens["refresh_token"]).status == 401
    again = logged_in(api)  # logging in again is the way back
    assert api.get("/v2/team/app/manifests/1", headers=bearer(again["access_token"])).status == 200


# ---- a change to an account, on the next request -------------------------------------------------

@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_a_revoked_or_expired_ci_token_fails_the_next_request(api: ApiClient, auth_registry: Registry) -> None:
    seed(api, "team/app")
    scheme = "Bearer " if auth_registry.settings.auth_mode == "token" else "Basic "
    secret = new_ci_token()
    record = TokenRecord("bob", secret.id, secret.secret_hash, None, "ci", int(time.time()))
    auth_registry.accounts.add_token(record)
    assert api.get("/v2/team/app/manifests/1", headers=basic("bob", str(secret))).status == 200
    auth_registry.accounts.remove_token("bob", secret.id)
    assert_challenge(api.get("/v2/team/app/manifests/1", headers=basic("bob", str(secret))), scheme)
    auth_registry.accounts.add_token(record)
    assert api.get("/v2/team/app/manifests/1", headers=basic("bob", str(secret))).status == 200
    auth_registry.accounts.remove_token("bob", secret.id)
    auth_registry.accounts.add_token(TokenRecord("bob", secret.id, secret.secret_hash, int(time.time()) - 1, "", 0))
    assert_challenge(api.get("/v2/team/app/manifests/1", headers=basic("bob", str(secret))), scheme)


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_a_user_removed_and_added_again_answers_to_the_new_password_only(api: ApiClient,
                                                                        auth_registry: Registry) -> None:
    seed(api, "team/app")
    scheme = "Bearer " if auth_registry.settings.auth_mode == "token" else "Basic "
    assert api.get("/v2/team/app/manifests/1", headers=basic("bob")).status == 200  # remembered as verified
    auth_registry.accounts.remove_user("bob")
    as_user(auth_registry, "bob", {"team/*": "pull"}, password="another one")
    assert_challenge(api.get("/v2/team/app/manifests/1", headers=basic("bob")), scheme)
    assert api.get("/v2/team/app/manifests/1", headers=basic("bob", "another one")).status == 200
    if auth_registry.settings.auth_mode == "token":
        assert api.get("/token?service=berth", headers=basic("bob")).status == 401
    # Added again with the very same password: that password is the new account's.
    auth_registry.accounts.remove_user("bob")
    as_user(auth_registry, "bob", {}, password=PASSWORD)
    refused = api.get("/v2/team/app/manifests/1", headers=basic("bob"))
    assert refused.status in (401, 403) and refused.json()["errors"][0]["code"] == "DENIED"  # no grant now


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_every_read_that_decides_a_login_is_strongly_consistent(api: ApiClient, auth_registry: Registry,
                                                               aws: AwsClients) -> None:
    """moto is always consistent, so the window cannot be shown here; what is asked of DynamoDB
    can. The promise is "on the next request", not "about a second later"."""
    secret = new_ci_token()
    auth_registry.accounts.add_token(TokenRecord("bob", secret.id, secret.secret_hash, None, "ci", 0))

    def logins() -> None:
        for credentials in (basic("bob"), basic("bob", str(secret)), basic("bob", "wrong")):
            api.get("/v2/", headers=credentials)
        if auth_registry.settings.auth_mode == "token":
            refresh(api, logged_in(api)["refresh_token"])

    reads = [(operation, params) for operation, params in dynamodb_requests(aws, logins)
             if operation in ("GetItem", "Query", "BatchGetItem")]
    assert reads
    eventual = [params.get("Key") or params.get("KeyConditionExpression") for _, params in reads
                if not params.get("ConsistentRead")]
    assert not eventual, eventual


# ---- signing keys --------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def crafted(header: dict[str, Any], key: bytes, digest: Any = hashlib.sha256, **overrides: Any) -> str:
    """A JWS made by hand, so that any header (a key id of any type, any `alg`) can be sent."""
    now = int(time.time())
    claims = {"iss": "berth", "sub": "alice", "aud": "berth", "iat": now, "nbf": now - 5, "exp": now + 300,
              "typ": "access", "access": [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}],
              **overrides}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), digest).digest() if key else b""
    return f"{signing_input}.{_b64(signature)}"


def test_key_ids_other_than_the_keys_are_refused_with_one_ring_read_at_most(api: ApiClient,
                                                                         auth_registry: Registry,
                                                                         aws: AwsClients) -> None:
    seed(api, "team/app")
    current = auth_registry.auth.keys().current
    genuine = crafted({"alg": "HS256", "typ": "JWT", "kid": current.kid}, current.key)
    assert api.get("/v2/team/app/manifests/1", headers=bearer(genuine)).status == 200  # the forger's method works
    kids: list[Any] = ["0123456789abcdef", "", "legacy", "../" + current.kid, current.kid + " ", current.kid.upper(),
                       current.kid + "\x00", "*", "x" * 5000, 7, True, None, [current.kid], {"kid": current.kid}]
    forged = [crafted({"alg": "HS256", "typ": "JWT", "kid": kid}, current.key) for kid in kids]
    forged.append(crafted({"alg": "HS256", "typ": "JWT"}, current.key))  # no key id at all
    calls = AwsCallCounter(aws.dynamodb).during(
        lambda: [assert_challenge(api.get("/v2/team/app/manifests/1", headers=bearer(t)), "Bearer ") for t in forged])
    assert calls.count("dynamodb.GetItem") <= 1, calls  # made-up key ids cannot make each request a read


def test_only_hs256_with_the_named_key_is_accepted(api: ApiClient, auth_registry: Registry) -> None:
    seed(api, "team/app")
    current = auth_registry.auth.keys().current
    attacker = b"k" * 32
    kid = current.kid
    forgeries = [
        crafted({"alg": "HS384", "kid": kid}, current.key, hashlib.sha384),
        crafted({"alg": "HS512", "kid": kid}, current.key, hashlib.sha512),
        crafted({"alg": "HS256", "kid": kid}, current.key, hashlib.sha512),
        crafted({"alg": "hs256", "kid": kid}, current.key),
        crafted({"alg": "none", "kid": kid}, b""),
        crafted({"alg": "RS256", "kid": kid}, current.key),
        crafted({"alg": "HS256", "kid": kid, "jwk": {"kty": "oct", "k": _b64(attacker)}}, attacker),
        crafted({"alg": "HS256", "kid": kid, "jku": "http://attacker.example/keys"}, attacker),
        crafted({"alg": "HS256", "kid": kid}, base64.b64encode(current.key)),
        crafted({"alg": "HS256", "kid": kid}, kid.encode()),
        crafted({"alg": "HS256", "kid": kid, "crit": ["exp"]}, attacker),
    ]
    for token in forgeries:
        assert_challenge(api.get("/v2/team/app/manifests/1", headers=bearer(token)), "Bearer ")
    assert api.get("/v2/team/app/manifests/1", headers=bearer(crafted({"alg": "HS256", "kid": kid},
                                                                       current.key))).status == 200


def test_a_key_signs_only_under_its_own_id_and_only_until_its_overlap_ends(api: ApiClient,
                                                                          auth_registry: Registry) -> None:
    seed(api, "team/app")
    old = auth_registry.auth.keys().current
    auth_registry.signing_keys.rotate(overlap_seconds=2)
    auth_registry.auth.keys.forget()
    new = auth_registry.auth.keys().current
    assert new.kid != old.kid
    swapped = [crafted({"alg": "HS256", "kid": new.kid}, old.key), crafted({"alg": "HS256", "kid": old.kid}, new.key)]
    for token in swapped:
        assert_challenge(api.get("/v2/team/app/manifests/1", headers=bearer(token)), "Bearer ")
    during = crafted({"alg": "HS256", "kid": old.kid}, old.key)
    assert api.get("/v2/team/app/manifests/1", headers=bearer(during)).status == 200  # the overlap
    retiring = auth_registry.auth.keys().find(old.kid)
    assert retiring is not None and retiring.retire_at is not None
    time.sleep(max(0.0, retiring.retire_at - time.time()) + 0.1)
    after = crafted({"alg": "HS256", "kid": old.kid}, old.key)
    assert_challenge(api.get("/v2/team/app/manifests/1", headers=bearer(after)), "Bearer ")
    assert api.get("/v2/team/app/manifests/1", headers=bearer(token_for(api, ["repository:team/app:pull"]))).status \
        == 200

