"""The authorizer against the function, after issue 11: each request is decided once, by the
gateway, with an answer a client can read; the gateway's own limits hold as AWS documents them
(a method ARN of at most 1,600 bytes, a policy resource of at most 512 characters: "Output from
an API Gateway Lambda authorizer" and "Amazon API Gateway quotas" in the API Gateway guide);
and nothing a caller sends makes the gateway or an access check hang."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.api import authorizer
from chalicelib.registry import Registry
from chalicelib.storage.clients import AwsClients
from tests.api.auth_support import PASSWORD, basic, bearer, token_for
from tests.api.test_auth_attacks import EVERY_ACTION, as_user, seed
from tests.conftest import ApiClient
from tests.helpers import digest_of

LAYER = digest_of(b"carol/a" * 10)  # in the image seed() pushes to carol/a
METHOD_ARN_LIMIT = 1600  # bytes, for a method with authorization (else: 414 Request URI too long)
POLICY_RESOURCE_LIMIT = 512  # characters of a resource ARN in an authorizer's policy statement
ARN_PREFIX = "arn:aws:execute-api:us-east-1:000000000000:local/api/GET"


def _answer_within(seconds: float, request: Callable[[], Any]) -> tuple[int, bytes] | None:
    """The status and body `request` gets, in a forked copy of this process (registry, moto and
    all), or None if it has not answered in `seconds`: a hung check is then killed, not left
    spinning in the test process."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        response = request()
        sender.send((response.status, response.body))

    process = context.Process(target=child, daemon=True)
    process.start()
    answered = receiver.poll(seconds)
    result = receiver.recv() if answered else None
    process.kill()
    process.join()
    return result


# ---- limits of the deployed gateway ----------------------------------------------------------

@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_a_path_too_long_for_a_method_arn_is_refused_as_aws_does(api: ApiClient) -> None:
    for length in (2_000, 9_000):
        path = "/v2/" + "a/" * (length // 2) + "manifests/1"
        assert len(ARN_PREFIX + path) > METHOD_ARN_LIMIT
        response = api.get(path, headers=basic("alice"))
        assert response.status == 414, (length, response.status, response.body)


@pytest.mark.parametrize("auth_registry", ["none"], indirect=True)
def test_without_auth_a_long_path_is_the_functions_own_error(api: ApiClient) -> None:
    """No authorizer, no method ARN limit (only the URL's, 10,240 characters for a regional API)."""
    response = api.get("/v2/" + "a/" * 4_500 + "manifests/1")
    assert response.status == 400 and response.json()["errors"][0]["code"] == "NAME_INVALID"


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_the_authorizer_never_names_a_resource_longer_than_aws_takes(api: ApiClient,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    results: list[dict[str, Any]] = []
    real = authorizer.policy

    def recorded(auth: Any, token: str, method_arn: str, source: str = "") -> dict[str, Any]:
        results.append(real(auth, token, method_arn, source))
        return results[-1]

    monkeypatch.setattr(authorizer, "policy", recorded)
    path = "/v2/team/app/manifests/" + "x" * 700  # a tag too long to be one: the function's 4xx
    assert len(ARN_PREFIX + path) < METHOD_ARN_LIMIT
    response = api.get(path, headers=basic("alice"))
    assert 400 <= response.status < 500, response.body
    resources = [r for result in results for s in result["policyDocument"]["Statement"]
                 for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])]
    assert resources and all(len(r) <= POLICY_RESOURCE_LIMIT for r in resources), [len(r) for r in resources]


# ---- nothing hangs -----------------------------------------------------------------------------

def test_a_path_full_of_wildcards_gets_an_answer(api: ApiClient) -> None:
    """Anyone may do this in token mode: an anonymous token needs no credentials."""
    anonymous = token_for(api, [], user=None)
    answer = _answer_within(5, lambda: api.get("/v2/" + "a*" * 64 + "/manifests/1", headers=bearer(anonymous)))
    assert answer is not None, "no answer: the request hangs"
    assert answer[0] == 400 and b"NAME_INVALID" in answer[1]


def test_a_grant_with_many_wildcards_is_checked_in_bounded_time(api: ApiClient, auth_registry: Registry) -> None:
    """`berth user grant` takes any number of `*`; whoever holds such a grant (or pushes a
    repository such a holder lists in the catalog) picks the names it is matched against."""
    as_user(auth_registry, "eve", {"*-*-*-*-*-*-*-*-x": "pull"})
    name = "a-" * 120 + "a"  # a valid name of 241 characters that the pattern does not match
    answer = _answer_within(5, lambda: api.get(f"/v2/{name}/manifests/1", headers=basic("eve")))
    assert answer is not None, "no answer: the access check hangs"
    assert answer[0] in (401, 403) and b"DENIED" in answer[1]


# ---- every refusal is the gateway's, with its challenge ----------------------------------------

def test_a_throttled_user_is_never_refused_without_a_challenge(api: ApiClient, auth_registry: Registry,
                                                               aws: AwsClients,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Deployed, the authorizer is a Lambda function of its own: its containers do not share
    the registry function's memory of verified passwords."""
    seed(api, "team/app")
    assert api.get("/v2/team/app/manifests/1", headers=basic("bob")).status == 200  # this container knows bob
    cold = Registry.build(auth_registry.settings, aws).auth  # a new authorizer container
    real = authorizer.policy
    monkeypatch.setattr(authorizer, "policy", lambda _auth, token, arn, source="": real(cold, token, arn, source))
    for _ in range(10):  # someone guesses bob's password
        api.get("/token?service=berth", headers=basic("bob", "guess"), source="203.0.113.66")
    refused = api.post("/v2/team/app/blobs/uploads/", headers=basic("bob"))  # bob may only pull
    assert refused.status in (401, 429), refused.body
    if refused.status == 401:
        assert refused.header("WWW-Authenticate"), refused.headers
    else:
        assert refused.header("Retry-After")


READS = ["/v2", "/v2/", "/v2/_catalog", "/v2/carol/a/manifests/1", f"/v2/carol/a/blobs/{LAYER}",  # GET and HEAD
         "/v2/carol/a/tags/list", f"/v2/carol/a/referrers/{LAYER}", "/v2/carol/a/manifests/%2A",
         "/v2/carol/a/manifests/a%3Fb", "/v2/carol/a/blobs/uploads/0123456789abcdef0123456789abcdef"]
WRITES = [("POST", "/v2/carol/a/blobs/uploads/"), ("PUT", "/v2/carol/a/manifests/2"),
          ("DELETE", "/v2/carol/a/manifests/1"), ("DELETE", f"/v2/carol/a/blobs/{LAYER}"),
          ("PATCH", "/v2/carol/a/blobs/uploads/0123456789abcdef0123456789abcdef")]


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_every_401_has_a_challenge_whatever_the_method_or_path(api: ApiClient, auth_registry: Registry) -> None:
    """GET and HEAD, `/v2` and `/v2/`, paths holding IAM's wildcards: no caller, a wrong password,
    an unknown user, a broken token, and bob (who may pull team/* only) on carol's repository.
    Each 401 carries a challenge; GET and HEAD are decided alike."""
    seed(api, "carol/a")
    as_user(auth_registry, "frank", {})  # a user with no grant at all
    callers = [{}, basic("bob", "wrong"), basic("ghost"), {"Authorization": "Bearer x.y.z"}, basic("bob"),
               basic("frank")]
    if auth_registry.settings.auth_mode == "token":
        callers += [bearer(token_for(api, [], user="bob")), bearer(token_for(api, [], user=None))]
    for headers in callers:
        requests = [(m, p) for p in READS for m in ("GET", "HEAD")] + WRITES
        answers = {}
        for method, path in requests:
            response = api.request(method, path, headers=headers)
            answers[method, path] = response.status
            if response.status == 200:  # valid credentials: logged in; the catalog lists nothing of carol's
                assert path in ("/v2", "/v2/", "/v2/_catalog") and b"carol" not in response.body, (headers, path)
            assert response.status < 500, (headers, method, path, response.body)
            if response.status == 401:
                assert response.header("WWW-Authenticate"), (headers, method, path, response.headers)
                assert response.header("x-amzn-Remapped-WWW-Authenticate") is None
            if response.status == 429:  # wrong passwords, over and over: throttled, and told when to retry
                assert response.header("Retry-After"), (headers, method, path)
        for path in READS[:5]:  # the paths with a HEAD route
            pair = answers["GET", path], answers["HEAD", path]
            if path != "/v2/_catalog" and 429 not in pair:
                assert pair[0] == pair[1], (headers, path)
    # The paths themselves are fine: alice, who may do everything, reaches them.
    assert api.head("/v2/carol/a/manifests/1", headers=basic("alice")).status == 200
    assert api.get(f"/v2/carol/a/blobs/{LAYER}", headers=basic("alice")).status == 307


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_a_path_with_iam_wildcards_is_decided_for_itself(api: ApiClient, auth_registry: Registry) -> None:
    """The policy names the method ARN, path and all: `*` and `?` in the path widen nothing."""
    auth_registry.accounts.grant("bob", "carol/a", EVERY_ACTION - {"delete"})
    seed(api, "carol/a")
    for reference in ("%2A", "1%3F", "%2A%2A", "1%2A"):
        assert api.get(f"/v2/carol/a/manifests/{reference}", headers=basic("bob")).status in (400, 404)
        refused = api.delete(f"/v2/carol/a/manifests/{reference}", headers=basic("bob"))
        assert refused.status in (401, 403) and refused.json()["errors"][0]["code"] == "DENIED"
    assert api.delete("/v2/carol/a/manifests/1", headers=basic("bob")).status in (401, 403)
    assert api.get("/v2/carol/a/manifests/1", headers=basic("alice", PASSWORD)).status == 200


@pytest.mark.parametrize("auth_registry", ["none"], indirect=True)
def test_without_auth_credentials_are_ignored_and_never_counted(api: ApiClient) -> None:
    """`none` promises nothing but that: no header is read, so none can fail, throttle or leak."""
    for _ in range(12):
        assert api.get("/v2/", headers=basic("alice", "wrong")).status == 200
    for headers in ({}, {"Authorization": "Bearer x.y.z"}, basic("nobody", "x"), {"Authorization": "Basic !!"}):
        assert api.get("/v2/", headers=headers).status == 200
    assert api.get("/v2/_catalog", headers=basic("alice", "wrong")).status == 200
    refused = api.get("/token?service=berth", headers=basic("alice"))
    assert refused.status == 405 and "token" not in refused.json()
