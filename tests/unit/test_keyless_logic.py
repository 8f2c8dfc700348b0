"""Keyless access, pure parts: trust rules and their matching, ID token checks against keys,
the checks on a signed STS request, and when issuer keys are fetched again."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from chalicelib.auth import iam, oidc
from chalicelib.auth.federation import (
    AWS,
    OIDC,
    TrustRule,
    aws_rule_matches,
    check_oidc_rule,
    check_principal,
    grants_of,
    issuer_allowed,
    oidc_rule_matches,
)
from chalicelib.auth.jwks import MIN_REFETCH_SECONDS, IssuerKeys, KeysUnavailable
from chalicelib.auth.permissions import Grant
from tests.oidc_issuer import Issuer, SigningKey

PULL, PUSH = frozenset({"pull"}), frozenset({"push"})
ISS = "https://issuer.test"


def oidc_rule(conditions: dict[str, str], grants: list[Grant], audience: str = "registry.test") -> TrustRule:
    return TrustRule("r", OIDC, grants, issuer=ISS, audience=audience, conditions=conditions)


# ---- rules ---------------------------------------------------------------------------------

def test_conditions_must_all_hold() -> None:
    rule = oidc_rule({"repository": "org/app", "ref": "refs/heads/main"}, [Grant("team/app", PUSH)])
    claims: dict[str, Any] = {"aud": "registry.test", "repository": "org/app", "ref": "refs/heads/main"}
    assert oidc_rule_matches(rule, ISS, claims)
    assert not oidc_rule_matches(rule, ISS, {**claims, "ref": "refs/heads/feature"})
    assert not oidc_rule_matches(rule, ISS, {k: v for k, v in claims.items() if k != "ref"})
    assert not oidc_rule_matches(rule, "https://other.test", claims)
    assert not oidc_rule_matches(rule, ISS, {**claims, "aud": "other"})
    assert oidc_rule_matches(rule, ISS, {**claims, "aud": ["other", "registry.test"]})


def test_conditions_are_patterns_matched_against_the_claim_not_the_other_way() -> None:
    rule = oidc_rule({"ref": "refs/tags/v*"}, [])
    assert oidc_rule_matches(rule, ISS, {"aud": "registry.test", "ref": "refs/tags/v1.2"})
    # A claim holding a pattern is just text: it matches only a rule that allows that text.
    exact = oidc_rule({"repository": "org/app"}, [])
    assert not oidc_rule_matches(exact, ISS, {"aud": "registry.test", "repository": "org/*"})
    assert not oidc_rule_matches(exact, ISS, {"aud": "registry.test", "repository": ["org/app"]})


def test_boolean_and_number_claims_compare_as_text() -> None:
    rule = oidc_rule({"ref_protected": "true", "project_id": "42"}, [])
    assert oidc_rule_matches(rule, ISS, {"aud": "registry.test", "ref_protected": True, "project_id": 42})
    assert not oidc_rule_matches(rule, ISS, {"aud": "registry.test", "ref_protected": False, "project_id": 42})


def test_several_matching_rules_merge_their_grants() -> None:
    rules = [oidc_rule({"repository": "org/app"}, [Grant("team/app", PULL)]),
             oidc_rule({"ref": "refs/heads/main"}, [Grant("team/app", PUSH), Grant("team/cache", PULL)]),
             oidc_rule({"environment": "prod"}, [Grant("prod/*", PUSH)])]
    claims = {"aud": "registry.test", "repository": "org/app", "ref": "refs/heads/main"}
    merged = grants_of(rules, lambda r: oidc_rule_matches(r, ISS, claims))
    assert merged == [Grant("team/app", PULL | PUSH), Grant("team/cache", PULL)]
    assert grants_of(rules, lambda r: False) is None


@pytest.mark.parametrize("issuer, conditions, audience", [
    ("http://issuer.test", {"repository": "org/app"}, "a"),
    ("https://issuer.test?x=1", {"repository": "org/app"}, "a"),
    ("https://issuer.test", {}, "a"),
    ("https://issuer.test", {"repository": "*"}, "a"),
    ("https://issuer.test", {"repository": "org/app"}, ""),
])
def test_unsafe_oidc_rules_are_refused(issuer: str, conditions: dict[str, str], audience: str) -> None:
    with pytest.raises(ValueError):
        check_oidc_rule(issuer, audience, conditions)


def test_http_issuers_only_on_the_loopback_and_only_when_allowed() -> None:
    assert issuer_allowed("https://token.actions.githubusercontent.com", http_loopback=False)
    assert not issuer_allowed("http://127.0.0.1:8080", http_loopback=False)
    assert issuer_allowed("http://127.0.0.1:8080", http_loopback=True)
    assert not issuer_allowed("http://169.254.169.254/latest", http_loopback=True)
    assert not issuer_allowed("https://user:pw@issuer.test", http_loopback=False)


ACCOUNT = "123456789012"


@pytest.mark.parametrize("principal, arn, matches", [
    (f"arn:aws:iam::{ACCOUNT}:role/ci", f"arn:aws:sts::{ACCOUNT}:assumed-role/ci/build-7", True),
    (f"arn:aws:iam::{ACCOUNT}:role/ci-*", f"arn:aws:sts::{ACCOUNT}:assumed-role/ci-push/s", True),
    (f"arn:aws:iam::{ACCOUNT}:role/ci", f"arn:aws:sts::{ACCOUNT}:assumed-role/ci2/s", False),
    (f"arn:aws:iam::{ACCOUNT}:role/ci", "arn:aws:sts::999999999999:assumed-role/ci/s", False),
    (f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice", f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice", True),
    (f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/alice", f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/bob", False),
    (f"arn:aws:iam::{ACCOUNT}:user/alice", f"arn:aws:iam::{ACCOUNT}:user/alice", True),
    (f"arn:aws:iam::{ACCOUNT}:user/alice", f"arn:aws:iam::{ACCOUNT}:user/alice2", False),
    (f"arn:aws:iam::{ACCOUNT}:user/alice", f"arn:aws:iam::{ACCOUNT}:role/alice", False),
    (ACCOUNT, f"arn:aws:iam::{ACCOUNT}:user/anyone", True),
    (ACCOUNT, "arn:aws:iam::999999999999:user/anyone", False),
    (ACCOUNT, "arn:aws:iam::123456789012:user/x\nforged", False),
])
def test_arn_rules(principal: str, arn: str, matches: bool) -> None:
    check_principal(principal)
    rule = TrustRule("r", AWS, [Grant("team/*", PULL)], principal=principal)
    assert aws_rule_matches(rule, arn) is matches


@pytest.mark.parametrize("principal", [
    "arn:aws:iam::*:role/ci", "arn:aws:iam::12345:role/ci", f"arn:aws:sts::{ACCOUNT}:role/ci",
    f"arn:aws:iam::{ACCOUNT}:assumed-role/ci/s", f"arn:aws:iam::{ACCOUNT}:role/path/ci", "*", "alice",
])
def test_principals_that_could_match_too_much_or_nothing_are_refused(principal: str) -> None:
    with pytest.raises(ValueError):
        check_principal(principal)


# ---- ID tokens ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer(url=ISS)


@pytest.mark.parametrize("index", [0, 1], ids=["RS256", "ES256"])
def test_a_valid_token(issuer: Issuer, index: int) -> None:
    key = issuer.keys[index]
    claims = oidc.verify(issuer.token({"repository": "org/app"}, key), key.jwk(), ISS, {"registry.test"}, time.time())
    assert claims["repository"] == "org/app"


def test_wrong_issuer_audience_and_times(issuer: Issuer) -> None:
    key = issuer.keys[0]
    now = time.time()
    refused = [
        issuer.token({"iss": "https://elsewhere.test"}),
        issuer.token({"aud": "another-registry"}),
        issuer.token(lifetime=-1),
        issuer.token({"nbf": int(now) + 600}),
        issuer.token({"iat": int(now) + 600}),
    ]
    for token in refused:
        with pytest.raises(oidc.InvalidIdToken):
            oidc.verify(token, key.jwk(), ISS, {"registry.test"}, now)
    # exp has no leeway: a token is refused from the second it expires.
    token = issuer.token(lifetime=30)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    oidc.verify(token, key.jwk(), ISS, {"registry.test"}, expires - 1)
    with pytest.raises(oidc.InvalidIdToken, match="expired"):
        oidc.verify(token, key.jwk(), ISS, {"registry.test"}, expires)


def test_a_key_the_issuer_did_not_publish_is_refused(issuer: Issuer) -> None:
    stranger = SigningKey.new("RS256")
    forged = issuer.token(key=SigningKey(issuer.keys[0].kid, "RS256", stranger.private))
    with pytest.raises(oidc.InvalidIdToken):
        oidc.verify(forged, issuer.keys[0].jwk(), ISS, {"registry.test"}, time.time())


def test_symmetric_and_unsigned_tokens_are_refused_before_any_key(issuer: Issuer) -> None:
    now = int(time.time())
    claims = {"iss": ISS, "aud": "registry.test", "exp": now + 60}
    public_pem = issuer.keys[0].jwk()["n"].encode()  # key confusion: the public key as an HMAC secret
    for token in (jwt.encode(claims, public_pem, algorithm="HS256"), jwt.encode(claims, None, algorithm="none")):
        with pytest.raises(oidc.InvalidIdToken, match="not accepted"):
            oidc.verify(token, issuer.keys[0].jwk(), ISS, {"registry.test"}, now)


def test_an_rsa_key_cannot_check_an_ec_token(issuer: Issuer) -> None:
    token = issuer.token(key=issuer.keys[1])
    with pytest.raises(oidc.InvalidIdToken, match="not for this algorithm"):
        oidc.verify(token, issuer.keys[0].jwk(), ISS, {"registry.test"}, time.time())


@pytest.mark.parametrize("text", ["", "a.b", "a.b.c", "x" * 20000, "e30.e30.sig"])
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(oidc.InvalidIdToken):
        oidc.unverified_issuer(text)


# ---- issuer keys ----------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_unknown_key_id_fetches_again_at_most_once_a_minute() -> None:
    published = [[{"kid": "a"}], [{"kid": "a"}, {"kid": "b"}]]
    fetched: list[str] = []

    def fetch(issuer: str) -> list[dict[str, Any]]:
        fetched.append(issuer)
        return published[min(len(fetched) - 1, 1)]

    clock = Clock()
    keys = IssuerKeys(fetch, clock)
    assert keys.key(ISS, "a") == {"kid": "a"} and len(fetched) == 1
    assert keys.key(ISS, "a") == {"kid": "a"} and len(fetched) == 1  # cached
    clock.now += MIN_REFETCH_SECONDS
    assert keys.key(ISS, "b") == {"kid": "b"} and len(fetched) == 2  # rotated in: fetched again
    for kid in ("x1", "x2", "x3"):  # made-up ids: one fetch a minute at most
        with pytest.raises(KeysUnavailable):
            keys.key(ISS, kid)
    assert len(fetched) == 2
    clock.now += MIN_REFETCH_SECONDS
    with pytest.raises(KeysUnavailable):
        keys.key(ISS, "x4")
    assert len(fetched) == 3


def test_keys_survive_an_issuer_outage() -> None:
    calls = []

    def fetch(issuer: str) -> list[dict[str, Any]]:
        calls.append(issuer)
        if len(calls) > 1:
            raise KeysUnavailable("down")
        return [{"kid": "a"}]

    clock = Clock()
    keys = IssuerKeys(fetch, clock)
    keys.key(ISS, "a")
    clock.now += 7200  # stale, and the issuer is down: the old keys still answer
    assert keys.key(ISS, "a") == {"kid": "a"} and len(calls) == 2


# ---- signed STS requests --------------------------------------------------------------------

SERVER = "registry.example.com"


def signed(server_id: str = SERVER, host: str = "sts.eu-west-1.amazonaws.com", region: str = "eu-west-1",
           offset: float | None = None, **changes: Any) -> str:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=f"https://{host}/", data=iam.STS_BODY,
                         headers={"Content-Type": iam.CONTENT_TYPE, iam.SERVER_ID_HEADER: server_id})
    SigV4Auth(Credentials("AKIAEXAMPLEEXAMPLE12", "secret", "session"), "sts", region).add_auth(request)
    headers = {k: str(v) for k, v in request.headers.items()}
    if offset is not None:  # signed that many seconds from now
        headers["X-Amz-Date"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + offset))
    document = {"Host": host, **headers}
    for name, value in changes.items():
        if value is None:
            document.pop(name)
        else:
            document[name] = value
    return iam.encode(document, f"https://{host}/")


def test_a_signed_request_for_this_registry_passes() -> None:
    request = iam.check(signed(), SERVER, time.time())
    assert request.host == "sts.eu-west-1.amazonaws.com"
    assert set(request.headers) == {"host", "content-type", "x-amz-date", "x-amz-security-token",
                                    "x-berth-server-id", "authorization"}
    assert iam.check(signed(server_id="https://Registry.Example.com:443/"), SERVER, time.time())
    assert iam.check(signed(host="sts.amazonaws.com", region="us-east-1"), SERVER, time.time())


@pytest.mark.parametrize("changes, reason", [
    ({"server_id": "other-registry.example.com"}, "another registry"),  # replayed from another service
    ({"host": "169.254.169.254"}, "not an STS endpoint"),  # SSRF
    ({"host": "sts.eu-west-1.amazonaws.com.evil.test"}, "not an STS endpoint"),
    ({"region": "us-east-1"}, "another region"),
    ({"offset": -16 * 60}, "too long ago"),
    ({"offset": 10 * 60}, "in the future"),
    ({"X-Berth-Server-ID": None}, "signed headers"),
    ({"X-Extra": "1"}, "signed headers"),  # an unsigned header would be forwarded
])
def test_signed_requests_that_are_refused(changes: dict[str, Any], reason: str) -> None:
    password = signed(**changes)  # made now: the checks run against the clock
    with pytest.raises(iam.IamRefused, match=reason):
        iam.check(password, SERVER, time.time())


@pytest.mark.parametrize("password", ["berth-aws-v1.e30", "berth-aws-v1.!!!", "not-a-signed-request",
                                      "berth-aws-v1." + "A" * 9000])
def test_what_is_not_a_signed_request_is_refused(password: str) -> None:
    with pytest.raises(iam.IamRefused):
        iam.check(password, SERVER, time.time())


def test_only_get_caller_identity_to_the_root_of_sts() -> None:
    import base64
    import json

    good = signed()
    document = json.loads(base64.urlsafe_b64decode(good[len(iam.PREFIX):] + "=="))
    for change in ({"body": "Action=AssumeRole&Version=2011-06-15"}, {"method": "GET"},
                   {"url": "https://sts.eu-west-1.amazonaws.com/other"},
                   {"url": "http://127.0.0.1:9/"}):
        tampered = iam.PREFIX + base64.urlsafe_b64encode(json.dumps({**document, **change}).encode()).decode()
        with pytest.raises(iam.IamRefused, match="GetCallerIdentity"):
            iam.check(tampered, SERVER, time.time())


def test_header_values_cannot_smuggle_lines() -> None:
    with pytest.raises(iam.IamRefused):
        iam.check(signed(**{"X-Amz-Security-Token": "a\r\nX-Evil: 1"}), SERVER, time.time())
