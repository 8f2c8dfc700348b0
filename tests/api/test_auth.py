"""Auth through API Gateway's authorizer and the handler, in token and Basic modes: the
flows real clients use, and every attack the registry must refuse."""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from typing import Any

import jwt
import pytest

from chalicelib.auth.permissions import ACTIONS, normalise_actions
from chalicelib.auth.secrets import new_ci_token
from chalicelib.registry import Registry
from chalicelib.storage.accounts import TokenRecord
from tests.api.auth_support import (
    PASSWORD,
    assert_challenge,
    assert_denied,
    basic,
    bearer,
    push_image,
    token_for,
)
from tests.conftest import ApiClient
from tests.helpers import digest_of

# ---- token mode ----------------------------------------------------------------------------

def test_the_docker_login_and_push_flow(api: ApiClient) -> None:
    first = api.get("/v2/")
    assert_challenge(first, "Bearer ")
    assert first.header("WWW-Authenticate") == 'Bearer realm="http://localhost/token",service="berth"'
    assert api.get("/v2/", headers=bearer(token_for(api, []))).status == 200
    token = token_for(api, ["repository:team/app:pull,push"])
    assert push_image(api, "team/app", bearer(token)).status == 201
    assert api.get("/v2/team/app/manifests/1", headers=bearer(token)).status == 200


def test_the_challenge_survives_api_gateway(api: ApiClient) -> None:
    """The Lambda's own WWW-Authenticate would be renamed by API Gateway; the one clients see
    comes from the gateway response."""
    response = api.get("/v2/team/app/manifests/1")
    assert response.header("WWW-Authenticate") is not None
    assert response.header("x-amzn-Remapped-WWW-Authenticate") is None


def test_the_authorizer_decides_as_the_handler_does(api: ApiClient) -> None:
    """Repository `team/app` and `team/app/manifests/x` look alike in a method ARN; the
    authorizer routes the path as the handler does, so the refusal is the gateway's, with a
    challenge clients can read, never the Lambda's renamed one."""
    token = token_for(api, ["repository:team/app:pull"])
    response = api.get("/v2/team/app/manifests/x/manifests/1", headers=bearer(token))
    assert response.status == 401
    assert response.header("WWW-Authenticate").endswith('error="insufficient_scope"')
    assert response.header("x-amzn-Remapped-WWW-Authenticate") is None


def test_token_grants_only_what_the_user_has(api: ApiClient) -> None:
    token = token_for(api, ["repository:team/app:pull,push,delete"], user="bob")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull"]}]
    assert claims["sub"] == "bob" and claims["aud"] == "berth" and claims["exp"] - claims["iat"] == 300


def test_pull_token_cannot_push(api: ApiClient) -> None:
    alice = token_for(api, ["repository:team/app:pull,push"])
    assert push_image(api, "team/app", bearer(alice)).status == 201
    bob = token_for(api, ["repository:team/app:pull,push"], user="bob")
    assert api.get("/v2/team/app/manifests/1", headers=bearer(bob)).status == 200
    refused = push_image(api, "team/app", bearer(bob), tag="2")
    assert refused.status in (401, 403)
    assert api.get("/v2/team/app/manifests/2", headers=bearer(alice)).status == 404


def test_token_for_one_repository_is_refused_on_another(api: ApiClient) -> None:
    token = token_for(api, ["repository:carol/a:pull,push"], user="carol")
    assert push_image(api, "carol/a", bearer(token)).status == 201
    assert_denied(api.get("/v2/carol/b/manifests/1", headers=bearer(token)))
    assert_denied(push_image(api, "carol/b", bearer(token)))


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer not.a.jwt", "Basic !!!", "Digest abc", "bearer x y",
                                    "Basic " + base64.b64encode(b"alice:wrong").decode()])
def test_malformed_or_foreign_authorization_is_refused(api: ApiClient, header: str) -> None:
    assert_challenge(api.get("/v2/", headers={"Authorization": header}), "Bearer ")


def test_token_mode_takes_basic_credentials_too(api: ApiClient) -> None:
    """Behind API Gateway the challenge names no scope; clients that take the scope from it
    (oras-py, python-dxf) send Basic instead."""
    assert push_image(api, "team/app", basic("alice")).status == 201
    assert api.get("/v2/team/app/manifests/1", headers=basic("bob")).status == 200
    # Refused at the gateway, whose ACCESS_DENIED answer is a 401 challenge in token mode.
    assert push_image(api, "team/app", basic("bob"), tag="2").status == 401
    assert api.get("/v2/team/app/manifests/2", headers=basic("alice")).status == 404


def _forged(registry: Registry, key: bytes | None = None, algorithm: str = "HS256", **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": "berth", "sub": "alice", "aud": "berth", "iat": now, "nbf": now, "exp": now + 300,
              "typ": "access", "access": [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}],
              **overrides}
    if algorithm == "none":
        header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        import json

        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return f"{header}.{payload}."
    current = registry.auth.keys().current
    return str(jwt.encode(claims, key or current.key, algorithm=algorithm, headers={"kid": current.kid}))


@pytest.mark.parametrize("forgery", ["alg-none", "other-key", "expired", "other-service", "refresh-as-access",
                                     "not-yet-valid"])
def test_forged_tokens_are_refused(api: ApiClient, auth_registry: Registry, forgery: str) -> None:
    token = {
        "alg-none": lambda: _forged(auth_registry, algorithm="none"),
        "other-key": lambda: _forged(auth_registry, key=b"k" * 32),
        "expired": lambda: _forged(auth_registry, exp=int(time.time()) - 1),
        "other-service": lambda: _forged(auth_registry, aud="another-registry"),
        "refresh-as-access": lambda: _forged(auth_registry, typ="refresh"),
        "not-yet-valid": lambda: _forged(auth_registry, nbf=int(time.time()) + 600),
    }[forgery]()
    assert_challenge(api.get("/v2/team/app/tags/list", headers=bearer(token)), "Bearer ")
    assert _forged(auth_registry) != token  # the genuine article passes, for contrast:
    assert api.get("/v2/", headers=bearer(_forged(auth_registry))).status == 200


@pytest.mark.parametrize("user, password", [("alice", "wrong"), ("nobody", PASSWORD), ("anonymous", ""),
                                            ("alice", "")])
def test_wrong_credentials_get_no_token(api: ApiClient, user: str, password: str) -> None:
    response = api.get("/token?service=berth&scope=repository:team/app:pull", headers=basic(user, password))
    assert response.status == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert "token" not in response.json()


def test_token_for_another_service_is_not_issued(api: ApiClient) -> None:
    response = api.get("/token?service=elsewhere&scope=repository:team/app:pull", headers=basic("alice"))
    assert response.status == 403


def test_anonymous_pull_exactly_where_granted(api: ApiClient) -> None:
    alice = token_for(api, ["repository:public/tool:pull,push", "repository:private/tool:pull,push"])
    assert push_image(api, "public/tool", bearer(alice)).status == 201
    assert push_image(api, "private/tool", bearer(alice)).status == 201
    anonymous = token_for(api, ["repository:public/tool:pull", "repository:private/tool:pull"], user=None)
    assert api.get("/v2/public/tool/manifests/1", headers=bearer(anonymous)).status == 200
    assert_denied(api.get("/v2/private/tool/manifests/1", headers=bearer(anonymous)))
    assert_denied(push_image(api, "public/tool", bearer(anonymous), tag="x"))


def test_catalog_lists_only_readable_repositories(api: ApiClient) -> None:
    alice = token_for(api, ["repository:team/app:push,pull", "repository:carol/a:push,pull",
                            "repository:public/x:push,pull"])
    for repo in ("team/app", "carol/a", "public/x"):
        assert push_image(api, repo, bearer(alice)).status == 201
    carol = token_for(api, ["registry:catalog:*"], user="carol")
    assert api.get("/v2/_catalog", headers=bearer(carol)).json() == {"repositories": ["carol/a"]}
    assert api.get("/v2/_catalog", headers=bearer(token_for(api, ["registry:catalog:*"]))).json() == {
        "repositories": ["carol/a", "public/x", "team/app"]}
    anonymous = token_for(api, ["registry:catalog:*"], user=None)
    assert_denied(api.get("/v2/_catalog", headers=bearer(anonymous)))


def test_mount_from_an_unreadable_repository_falls_back_to_an_upload(api: ApiClient) -> None:
    alice = token_for(api, ["repository:team/app:pull,push"])
    assert push_image(api, "team/app", bearer(alice)).status == 201
    layer = digest_of(b"team/app" * 10)
    carol = token_for(api, ["repository:carol/a:pull,push", "repository:team/app:pull"], user="carol")
    response = api.post(f"/v2/carol/a/blobs/uploads/?mount={layer}&from=team/app", headers=bearer(carol))
    assert response.status == 202  # an upload, as if the blob did not exist anywhere
    assert api.head(f"/v2/carol/a/blobs/{layer}", headers=bearer(carol)).status == 404
    no_source = api.post(f"/v2/carol/a/blobs/uploads/?mount={layer}", headers=bearer(carol))
    assert no_source.status == 202


def test_mount_from_a_readable_repository(api: ApiClient) -> None:
    alice = token_for(api, ["repository:team/app:pull,push", "repository:team/other:pull,push"])
    assert push_image(api, "team/app", bearer(alice)).status == 201
    layer = digest_of(b"team/app" * 10)
    response = api.post(f"/v2/team/other/blobs/uploads/?mount={layer}&from=team/app", headers=bearer(alice))
    assert response.status == 201


def test_oauth2_password_and_refresh_grants(api: ApiClient) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = api.post("/token", headers=form, body=(
        f"grant_type=password&username=alice&password={PASSWORD.replace(' ', '+')}&service=berth"
        "&scope=repository:team/app:pull+repository:team/app:push&client_id=containerd&access_type=offline").encode())
    assert response.status == 200, response.body
    body = response.json()
    assert api.get("/v2/team/app/tags/list", headers=bearer(body["access_token"])).status in (200, 404)
    refreshed = api.post("/token", headers=form, body=(
        f"grant_type=refresh_token&refresh_token={body['refresh_token']}&service=berth"
        "&scope=repository:team/app:pull&client_id=containerd").encode())
    assert refreshed.status == 200
    assert push_image(api, "team/app", bearer(refreshed.json()["access_token"])).status in (401, 403)
    for bad in ("grant_type=refresh_token&refresh_token=" + body["access_token"],
                "grant_type=password&username=alice&password=nope", "grant_type=magic"):
        assert api.post("/token", headers=form, body=bad.encode()).status in (400, 401, 405)


def test_ci_tokens_log_in_until_revoked_or_expired(api: ApiClient, auth_registry: Registry) -> None:
    secret = new_ci_token()
    record = TokenRecord("bob", secret.id, secret.secret_hash, None, "ci", int(time.time()))
    auth_registry.accounts.add_token(record)
    assert token_for(api, ["repository:team/app:pull"], user="bob", password=str(secret))
    assert api.get("/token?service=berth", headers=basic("alice", str(secret))).status == 401  # not alice's
    auth_registry.accounts.remove_token("bob", secret.id)
    assert api.get("/token?service=berth", headers=basic("bob", str(secret))).status == 401
    expiring = new_ci_token()
    auth_registry.accounts.add_token(replace(record, id=expiring.id, secret_hash=expiring.secret_hash,
                                             expires=int(time.time()) - 1))
    assert api.get("/token?service=berth", headers=basic("bob", str(expiring))).status == 401


# ---- basic mode ----------------------------------------------------------------------------

@pytest.mark.parametrize("auth_registry", ["basic"], indirect=True)
def test_basic_mode(api: ApiClient, auth_registry: Registry) -> None:
    assert_challenge(api.get("/v2/"), "Basic ")
    assert api.get("/v2/", headers=basic("alice")).status == 200
    assert push_image(api, "team/app", basic("alice")).status == 201
    assert api.get("/v2/team/app/manifests/1", headers=basic("bob")).status == 200
    denied = push_image(api, "team/app", basic("bob"), tag="2")
    assert denied.status == 403 and denied.json()["errors"][0]["code"] == "DENIED"
    assert_challenge(api.get("/v2/team/app/manifests/1", headers=basic("bob", "wrong")), "Basic ")
    assert_challenge(api.get("/v2/team/app/manifests/1", headers=basic("ghost")), "Basic ")
    assert api.get("/v2/_catalog", headers=basic("bob")).json() == {"repositories": ["team/app"]}
    assert api.get("/v2/_catalog", headers=basic("carol")).json() == {"repositories": []}
    secret = new_ci_token()
    auth_registry.accounts.add_token(TokenRecord("alice", secret.id, secret.secret_hash, None, "", 0))
    assert api.get("/v2/team/app/manifests/1", headers=basic("alice", str(secret))).status == 200
    auth_registry.accounts.remove_token("alice", secret.id)
    assert_challenge(api.get("/v2/team/app/manifests/1", headers=basic("alice", str(secret))), "Basic ")
    assert api.get("/token?service=berth", headers=basic("alice")).status == 405  # no tokens in Basic mode


def test_every_action_can_be_granted() -> None:
    assert normalise_actions(["*"]) == frozenset(ACTIONS)
    with pytest.raises(ValueError):
        normalise_actions(["pull", "fly"])


def test_a_token_asked_for_no_scope_carries_every_grant(api: ApiClient) -> None:
    """For clients that ask /token for the scope the challenge names, which is none here."""
    bob = token_for(api, [], user="bob")
    claims = jwt.decode(bob, options={"verify_signature": False})
    assert claims["access"] == [] and claims["grants"] == [{"pattern": "team/*", "actions": ["pull"]}]
    alice = token_for(api, ["repository:team/app:pull,push"])
    assert push_image(api, "team/app", bearer(alice)).status == 201
    assert api.get("/v2/team/app/manifests/1", headers=bearer(bob)).status == 200
    assert_denied(push_image(api, "team/app", bearer(bob), tag="2"))
    assert_denied(api.get("/v2/carol/a/tags/list", headers=bearer(bob)))
    anonymous = token_for(api, [], user=None)
    assert push_image(api, "public/x", bearer(token_for(api, ["repository:public/x:pull,push"]))).status == 201
    assert api.get("/v2/public/x/manifests/1", headers=bearer(anonymous)).status == 200
    assert_denied(api.get("/v2/team/app/manifests/1", headers=bearer(anonymous)))
