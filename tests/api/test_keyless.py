"""Keyless access through API Gateway's authorizer and the handler: OIDC ID tokens from a real
issuer on the loopback (discovery document, keys fetched over HTTP), and signed STS requests
answered by moto's STS behind the local mode's signature check, over HTTP."""

from __future__ import annotations

import base64
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import boto3
import jwt
import pytest
from moto.server import ThreadedMotoServer

from berth.keyless.sources import aws_password
from berth.local import sts as local_sts
from chalicelib.auth.authenticator import Authenticator
from chalicelib.auth.federation import AWS, OIDC, TrustRule
from chalicelib.auth.jwks import MIN_REFETCH_SECONDS
from chalicelib.auth.keyless import KeylessLogin, issuer_keys
from chalicelib.auth.permissions import Grant
from chalicelib.registry import Registry
from chalicelib.settings import Settings
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.throttle import FailureCounters
from chalicelib.storage.trust import TrustStore
from tests.api.test_auth import assert_challenge, basic, bearer, push_image
from tests.conftest import ApiClient
from tests.helpers import load_app
from tests.oidc_issuer import Issuer, SigningKey, serving

AUDIENCE = "registry.test"
PULL, PUSH_PULL = frozenset({"pull"}), frozenset({"pull", "push"})


class Clock:
    """Time for the key cache (monotonic), which the tests move on."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with serving() as running:
        yield running


@pytest.fixture
def key_clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Token mode; this registry is `registry.test`; issuers may be on the loopback over HTTP."""
    monkeypatch.setenv("BERTH_AUTH", "token")
    return replace(registry.settings, auth_mode="token", oidc_http_loopback=True, server_id=AUDIENCE)


def rules_of(registry: Registry) -> TrustStore:
    return TrustStore(AwsClients(registry.settings.region), registry.settings.table)


def build(settings: Settings, aws: AwsClients, key_clock: Callable[[], float] = time.monotonic) -> Registry:
    registry = Registry.build(settings, aws)
    keyless = KeylessLogin(settings, TrustStore(aws, settings.table), issuer_keys(settings.oidc_http_loopback,
                                                                                   key_clock))
    registry.auth = Authenticator(settings, registry.accounts, registry.auth.keys, FailureCounters(aws, settings.table),
                                  keyless)
    return registry


@pytest.fixture
def keyless(settings: Settings, aws: AwsClients, issuer: Issuer, key_clock: Clock) -> Registry:
    """The registry, trusting the loopback issuer's tokens for org/app with team/app."""
    registry = build(settings, aws, key_clock)
    issuer.keys = [SigningKey.new("RS256"), SigningKey.new("ES256")]
    issuer.fetches = 0
    trust(registry, OIDC, {"team/app": PUSH_PULL}, issuer=issuer.url, conditions={"repository": "org/app"})
    return registry


def trust(registry: Registry, kind: str, grants: dict[str, frozenset[str]], **fields: Any) -> TrustRule:
    store = rules_of(registry)
    audience = fields.pop("audience", AUDIENCE) if kind == OIDC else ""
    return store.add(TrustRule("", kind, [Grant(p, a) for p, a in grants.items()], audience=audience, **fields))


@pytest.fixture
def api(keyless: Registry) -> ApiClient:
    return ApiClient(load_app(keyless))


def login(api: ApiClient, user: str, password: str, scope: str = "repository:team/app:pull,push") -> Any:
    return api.get(f"/token?service=berth&scope={scope}&offline_token=true", headers=basic(user, password))


def granted(response: Any) -> list[dict[str, Any]]:
    assert response.status == 200, response.body
    return list(jwt.decode(response.json()["token"], options={"verify_signature": False})["access"])


# ---- OIDC ----------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [0, 1], ids=["RS256", "ES256"])
def test_a_ci_job_pushes_with_its_id_token(api: ApiClient, issuer: Issuer, key: int) -> None:
    token = issuer.token({"repository": "org/app"}, key=issuer.keys[key])
    response = login(api, "oidc", token)
    assert granted(response) == [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]
    body = response.json()
    assert "refresh_token" not in body  # nothing to refresh against: the job asks its CI again
    registry_token = body["token"]
    assert push_image(api, "team/app", bearer(registry_token)).status == 201
    claims = jwt.decode(registry_token, options={"verify_signature": False})
    assert claims["sub"] == "oidc:repo:org/app:ref:refs/heads/main"
    # containerd and BuildKit log in with the OAuth2 form: the same answer, and no refresh token.
    form = f"grant_type=password&username=oidc&password={token}&scope=repository:team/app:pull&access_type=offline"
    posted = api.post("/token", body=form.encode(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert granted(posted) == [{"type": "repository", "name": "team/app", "actions": ["pull"]}]
    assert "refresh_token" not in posted.json()
    # Scopes are names, matched against the grants: a pattern asked for is refused, not widened.
    assert granted(login(api, "oidc", token, scope="repository:team/*:pull")) == []
    assert granted(login(api, "oidc", token, scope="repository:team/other:pull")) == []


def test_the_registry_token_does_not_outlive_the_id_token(api: ApiClient, issuer: Issuer) -> None:
    token = issuer.token({"repository": "org/app"}, lifetime=40)
    id_expiry = jwt.decode(token, options={"verify_signature": False})["exp"]
    body = login(api, "oidc", token).json()
    assert body["expires_in"] <= 40
    assert jwt.decode(body["token"], options={"verify_signature": False})["exp"] <= id_expiry


@pytest.mark.parametrize("claims, reason", [
    ({"repository": "org/app", "aud": "another-registry"}, "InvalidAudienceError"),
    ({"repository": "org/app", "exp": int(time.time()) - 1}, "expired"),
    ({"repository": "org/app", "nbf": int(time.time()) + 3600}, "nbf is in the future"),
    ({"repository": "org/other"}, "no rule's conditions hold"),
    ({"repository": "org/app", "iss": "http://127.0.0.1:9"}, "no rule trusts issuer"),
], ids=["audience", "expired", "not-yet", "conditions", "issuer"])
def test_tokens_that_get_nothing(api: ApiClient, issuer: Issuer, claims: dict[str, Any], reason: str,
                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="berth.keyless")
    token = issuer.token(claims)
    assert login(api, "oidc", token).status == 401
    assert reason in caplog.text and token not in caplog.text
    assert_challenge(api.get("/v2/", headers=basic("oidc", token)), "Bearer ")


def test_a_token_from_another_issuer_with_our_issuers_name_is_refused(api: ApiClient, issuer: Issuer) -> None:
    impostor = Issuer(url=issuer.url)  # same iss, its own keys, same key ids even
    impostor.keys = [SigningKey(k.kid, k.alg, SigningKey.new(k.alg).private) for k in issuer.keys]
    assert login(api, "oidc", impostor.token({"repository": "org/app"})).status == 401


def test_an_unknown_key_is_refused_and_fetches_at_most_once_a_minute(api: ApiClient, issuer: Issuer,
                                                                     key_clock: Clock) -> None:
    assert login(api, "oidc", issuer.token({"repository": "org/app"})).status == 200
    assert issuer.fetches == 1
    for minute in range(3):
        key_clock.now += MIN_REFETCH_SECONDS + 1
        for _ in range(5):  # made-up key ids: the first of each minute looks again, the others cannot
            stranger = SigningKey.new("ES256")
            assert login(api, "oidc", issuer.token({"repository": "org/app"}, key=stranger)).status == 401
        assert issuer.fetches == 2 + minute


def test_rotated_keys(api: ApiClient, issuer: Issuer, key_clock: Clock) -> None:
    old = issuer.keys[0]
    assert login(api, "oidc", issuer.token({"repository": "org/app"}, key=old)).status == 200
    new = SigningKey.new("ES256")
    issuer.keys = [new]  # the issuer rotates: the new key is published, the old one withdrawn
    key_clock.now += MIN_REFETCH_SECONDS + 1
    assert login(api, "oidc", issuer.token({"repository": "org/app"}, key=new)).status == 200
    assert login(api, "oidc", issuer.token({"repository": "org/app"}, key=old)).status == 401


def test_several_rules_add_up(api: ApiClient, keyless: Registry, issuer: Issuer) -> None:
    trust(keyless, OIDC, {"team/cache": PULL}, issuer=issuer.url, conditions={"ref": "refs/heads/*"})
    trust(keyless, OIDC, {"prod/app": PUSH_PULL}, issuer=issuer.url, conditions={"environment": "prod"})
    trust(keyless, OIDC, {"other/*": PUSH_PULL}, issuer=issuer.url, audience="elsewhere",
          conditions={"repository": "org/app"})
    token = issuer.token({"repository": "org/app", "ref": "refs/heads/main"})
    assert granted(login(api, "oidc", token, scope="repository:team/app:push repository:team/cache:pull,push"
                                                   " repository:prod/app:pull repository:other/x:pull")) == [
        {"type": "repository", "name": "team/app", "actions": ["push"]},
        {"type": "repository", "name": "team/cache", "actions": ["pull"]},
    ]


def test_a_rule_removed_holds_on_the_next_login(api: ApiClient, keyless: Registry, issuer: Issuer) -> None:
    token = issuer.token({"repository": "org/app"})
    assert login(api, "oidc", token).status == 200
    store = rules_of(keyless)
    for rule in store.rules():
        assert store.remove(rule.id)
    assert login(api, "oidc", token).status == 401


def test_basic_mode_takes_an_id_token(keyless: Registry, issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_AUTH", "basic")
    keyless.settings = replace(keyless.settings, auth_mode="basic")
    keyless.auth.settings = keyless.settings
    api = ApiClient(load_app(keyless))
    token = issuer.token({"repository": "org/app"})
    assert push_image(api, "team/app", basic("oidc", token)).status == 201
    assert api.get("/v2/team/app/manifests/1", headers=basic("oidc", token)).status == 200
    assert api.get("/v2/team/other/manifests/1", headers=basic("oidc", token)).status == 403
    expired = issuer.token({"repository": "org/app"}, lifetime=-1)
    assert api.get("/v2/team/app/manifests/1", headers=basic("oidc", expired)).status == 401


def test_no_issuer_is_fetched_over_plain_http_unless_allowed(settings: Settings, aws: AwsClients,
                                                             keyless: Registry, issuer: Issuer) -> None:
    api = ApiClient(load_app(build(replace(settings, oidc_http_loopback=False), aws)))
    assert login(api, "oidc", issuer.token({"repository": "org/app"})).status == 401
    assert issuer.fetches == 0


# ---- AWS IAM -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sts_endpoint() -> Iterator[str]:
    """moto's STS over HTTP, behind the local mode's signature check."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    guard = local_sts.start(f"http://{host}:{port}")
    try:
        yield guard.endpoint
    finally:
        guard.stop()
        server.stop()


@pytest.fixture
def iam_api(settings: Settings, aws: AwsClients, keyless: Registry, sts_endpoint: str) -> ApiClient:
    return ApiClient(load_app(build(replace(settings, sts_endpoint=sts_endpoint), aws)))


def iam_user(name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    keys = boto3.client("iam", region_name="us-east-1")
    keys.create_user(UserName=name)
    created = keys.create_access_key(UserName=name)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", created["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", created["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return str(keys.get_user(UserName=name)["User"]["Arn"])


def test_an_iam_user_pushes_with_a_signed_request(iam_api: ApiClient, keyless: Registry,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    arn = iam_user("alice-iam", monkeypatch)
    trust(keyless, AWS, {"team/*": PUSH_PULL}, principal=arn)
    response = login(iam_api, "aws", aws_password(AUDIENCE))
    assert granted(response) == [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]
    assert jwt.decode(response.json()["token"], options={"verify_signature": False})["sub"] == f"aws:{arn}"
    assert push_image(iam_api, "team/app", bearer(response.json()["token"])).status == 201


def test_an_assumed_role_session_gets_its_roles_grants(iam_api: ApiClient, keyless: Registry,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    role = "arn:aws:iam::123456789012:role/ci-pusher"
    trust(keyless, AWS, {"team/app": PULL}, principal=role)
    session = boto3.client("sts", region_name="us-east-1").assume_role(RoleArn=role, RoleSessionName="build-42")
    credentials = session["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    response = login(iam_api, "aws", aws_password(AUDIENCE))
    assert granted(response) == [{"type": "repository", "name": "team/app", "actions": ["pull"]}]
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert claims["sub"] == "aws:arn:aws:sts::123456789012:assumed-role/ci-pusher/build-42"


def test_signed_requests_sts_or_we_refuse(iam_api: ApiClient, keyless: Registry, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    arn = iam_user("bob-iam", monkeypatch)
    trust(keyless, AWS, {"team/*": PUSH_PULL}, principal=arn)
    caplog.set_level(logging.INFO, logger="berth.keyless")

    def refused_because(password: str, reason: str) -> None:
        caplog.clear()
        assert login(iam_api, "aws", password).status == 401
        assert reason in caplog.text and password not in caplog.text

    refused_because(aws_password("other-registry.example.com"), "signed for another registry")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    refused_because(aws_password(AUDIENCE), "STS refused it: 403 SignatureDoesNotMatch")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    refused_because(aws_password(AUDIENCE), "STS refused it: 403 InvalidClientTokenId")
    other = iam_user("mallory-iam", monkeypatch)  # a real identity no rule names
    refused_because(aws_password(AUDIENCE), f"no rule trusts '{other}'")


def test_a_request_the_client_aims_elsewhere_is_never_sent(iam_api: ApiClient, keyless: Registry,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """However the blob names its endpoint, the registry connects nowhere but STS."""
    import json

    arn = iam_user("carol-iam", monkeypatch)
    trust(keyless, AWS, {"team/*": PUSH_PULL}, principal=arn)
    listener = socket.socket()  # where the tampered requests point: any connection waits in its backlog
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    password = aws_password(AUDIENCE)
    raw = password[len("berth-aws-v1."):]
    document = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    target = f"127.0.0.1:{listener.getsockname()[1]}"
    for change in ({"url": f"http://{target}/"}, {"headers": {**document["headers"], "Host": target}}):
        tampered = "berth-aws-v1." + base64.urlsafe_b64encode(json.dumps({**document, **change}).encode()).decode()
        assert login(iam_api, "aws", tampered).status == 401
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()
