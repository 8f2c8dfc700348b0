"""Password guessing, attacked after issue 11: whether a user name exists is told by no status,
body, header, bcrypt check or storage call; failed logins are throttled per name and per source
address (API Gateway's, never a header's), with 429 and Retry-After on every path a password
takes; and the throttle neither lets a spelling of a name around it nor locks out what a
legitimate client holds besides its password."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import bcrypt
import pytest

from chalicelib.auth import authenticator as authenticator_module
from chalicelib.auth import throttle
from chalicelib.auth.secrets import hash_password, new_ci_token
from chalicelib.registry import Registry
from chalicelib.storage.accounts import TokenRecord
from chalicelib.storage.clients import AwsClients
from tests.api.auth_support import PASSWORD, basic, bearer
from tests.api.lifecycle_support import SerializedAws
from tests.api.test_attack_sessions import dynamodb_requests, logged_in, refresh
from tests.api.test_auth_attacks import FORM, oauth, password_form
from tests.conftest import ApiClient
from tests.helpers import AwsCallCounter, load_app

CI_SHAPED = "berth_0123456789abcdef_" + "A" * 43  # a CI token's form, a token nobody holds


@pytest.fixture(autouse=True)
def steady_window() -> None:
    """Counters live in fixed 5-minute windows: start a test well inside one, so that no
    window ends halfway through it."""
    left = throttle.USER_LIMIT.window(time.time())[1]
    if left < 15:
        time.sleep(left + 0.5)


CHEAP_DECOY = hash_password("nobody keeps this", rounds=4)


@pytest.fixture(autouse=True)
def cheap_decoy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown names are checked against a decoy hash of the production cost (~70 ms and more on
    a loaded machine); the test users' hashes have cost 4, and so may the decoy here."""
    monkeypatch.setattr(authenticator_module, "_DECOY_HASH", CHEAP_DECOY)


@pytest.fixture
def bcrypt_work(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many bcrypt hashes and checks run, whoever runs them."""
    done = {"hashpw": 0, "checkpw": 0}
    for name in done:
        real = getattr(bcrypt, name)

        def counted(*args: Any, _real: Any = real, _name: str = name) -> Any:
            done[_name] += 1
            return _real(*args)

        monkeypatch.setattr(bcrypt, name, counted)
    return done


def _attempts(mode: str) -> dict[str, Any]:
    """Each way a password reaches Berth in `mode`: (user, password) -> response."""
    ways: dict[str, Any] = {"v2": lambda api, user, password, source: api.get(
        "/v2/", headers=basic(user, password), source=source)}
    if mode == "token":
        ways["token"] = lambda api, user, password, source: api.get(
            "/token?service=berth", headers=basic(user, password), source=source)
        ways["oauth"] = lambda api, user, password, source: oauth(api, password_form(user, password), source)
    return ways


# ---- no user enumeration ---------------------------------------------------------------------

@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_known_and_unknown_names_are_answered_alike(api: ApiClient, auth_registry: Registry, aws: AwsClients,
                                                    bcrypt_work: dict[str, int]) -> None:
    _attempts(auth_registry.settings.auth_mode)["v2"](api, "warming-the-decoy", "x", "192.0.2.250")
    for way, attempt in _attempts(auth_registry.settings.auth_mode).items():
        for password in ("a wrong password", CI_SHAPED):
            seen = {}
            for index, user in enumerate(("alice", "nobody-here", "anonymous")):
                bcrypt_work.update(hashpw=0, checkpw=0)
                answer: list[Any] = []
                calls = AwsCallCounter(aws.dynamodb).during(
                    lambda a=attempt, u=user, p=password, i=index, out=answer: out.append(a(api, u, p, f"192.0.2.{i}")))
                response = answer[0]
                seen[user] = (response.status, response.body, sorted(response.headers), dict(bcrypt_work),
                              calls if user != "anonymous" else None)  # anonymous is no secret: one read less
            assert seen["alice"] == seen["nobody-here"], (way, password, seen)
            assert seen["alice"][:4] == seen["anonymous"][:4], (way, password, seen)
            assert seen["alice"][0] == 401


def test_the_first_unknown_name_costs_what_a_known_one_does(api: ApiClient, bcrypt_work: dict[str, int]) -> None:
    assert api.get("/token?service=berth", headers=basic("alice", "wrong")).status == 401
    known = dict(bcrypt_work)
    bcrypt_work.update(hashpw=0, checkpw=0)
    assert api.get("/token?service=berth", headers=basic("nobody-here", "wrong")).status == 401
    assert bcrypt_work == known


# ---- throttling ----------------------------------------------------------------------------

def test_guesses_in_parallel_get_no_more_checks_than_the_limit(auth_registry: Registry,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    guesses = throttle.USER_LIMIT.failures + 6
    arrived = threading.Barrier(guesses, timeout=2)  # the checks wait for each other: at once, as in Lambda
    checks = []
    real = authenticator_module.check_password

    def together(password: str, hashed: str) -> bool:
        checks.append(password)
        with contextlib.suppress(threading.BrokenBarrierError):  # fewer arrived: the throttle held the rest
            arrived.wait()
        return real(password, hashed)

    monkeypatch.setattr(authenticator_module, "check_password", together)
    # DynamoDB applies each conditional write atomically; moto in-process does not under threads.
    monkeypatch.setattr(auth_registry.auth._failures, "_clients", SerializedAws(auth_registry.clients))
    containers = [ApiClient(load_app(auth_registry)) for _ in range(guesses)]
    answers: list[int] = []
    threads = [threading.Thread(target=lambda c=c, i=i: answers.append(c.get(
        "/token?service=berth", headers=basic("alice", f"guess {i}"), source=f"198.51.100.{i}").status))
        for i, c in enumerate(containers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == guesses and set(answers) <= {401, 429}
    assert len(checks) <= throttle.USER_LIMIT.failures, f"{len(checks)} guesses checked, limit {throttle.USER_LIMIT}"


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_spraying_passwords_over_v2_is_throttled_per_address(api: ApiClient) -> None:
    sprayer = "203.0.113.77"
    for index in range(throttle.SOURCE_LIMIT.failures):  # one guess each for many names
        assert api.get("/v2/", headers=basic(f"user{index}", "Summer2024!"), source=sprayer).status in (401, 429)
    assert api.get("/v2/", headers=basic("user-next", "Summer2024!"), source=sprayer).status == 429
    assert api.get("/v2/", headers=basic("carol"), source=sprayer).status == 429  # checks stop for the address


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_a_throttled_name_keeps_what_its_owner_holds_besides_the_password(api: ApiClient,
                                                                          auth_registry: Registry,
                                                                          aws: AwsClients) -> None:
    """Someone who knows the name can hold up new password checks for it (docs/auth.md says so),
    but not the CI tokens, refresh tokens and registry tokens its owner already has, nor a
    container that already verified the password."""
    token_mode = auth_registry.settings.auth_mode == "token"
    secret = new_ci_token()
    auth_registry.accounts.add_token(TokenRecord("alice", secret.id, secret.secret_hash, None, "ci", 0))
    held = logged_in(api, "alice") if token_mode else None
    assert api.get("/v2/", headers=basic("alice")).status == 200  # this container verified the password
    for _ in range(throttle.USER_LIMIT.failures):
        api.get("/v2/", headers=basic("alice", "guess"), source="203.0.113.5")
    assert api.get("/v2/", headers=basic("alice", "guess")).status == 429
    assert api.get("/v2/", headers=basic("alice", str(secret))).status == 200
    assert api.get("/v2/", headers=basic("alice")).status == 200
    cold = ApiClient(load_app(Registry.build(auth_registry.settings, aws)))  # a container that never saw alice
    throttled = cold.get("/v2/", headers=basic("alice"))
    assert throttled.status == 429 and throttled.header("Retry-After")
    assert cold.get("/v2/", headers=basic("alice", str(secret))).status == 200
    if held is not None:
        assert cold.get("/v2/", headers=bearer(held["access_token"])).status == 200
        assert refresh(cold, held["refresh_token"]).status == 200
        assert cold.get("/token?service=berth", headers=basic("alice", str(secret))).status == 200
        assert cold.get("/token?service=berth", headers=basic("alice")).status == 429


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_no_spelling_of_a_throttled_name_reaches_its_account(api: ApiClient, auth_registry: Registry) -> None:
    for _ in range(throttle.USER_LIMIT.failures):
        api.get("/v2/", headers=basic("alice", "guess"), source="203.0.113.5")
    spellings = ["Alice", "ALICE", "alice ", " alice", "\uff41lice", "alice\u200b", "al\u0456ce", "alice\x00",
                 "alice\t", "alic\u0435", "a\u0308lice"]
    for index, name in enumerate(spellings):
        for way, attempt in _attempts(auth_registry.settings.auth_mode).items():
            response = attempt(api, name, PASSWORD, f"198.51.100.{index}")
            assert response.status in (401, 429), (name, way, response.status)


def _spoofing(header: str, index: int) -> dict[str, str]:
    return {header: f"for=192.0.2.{index}" if header == "Forwarded" else f"192.0.2.{index}"}


def test_the_source_address_is_api_gateways_never_a_header(api: ApiClient) -> None:
    """At /token and the OAuth2 grant, which count per address (Basic on /v2 does not: above)."""
    spoofs = ["X-Forwarded-For", "X-Real-IP", "Forwarded", "True-Client-IP", "CF-Connecting-IP", "X-Client-IP"]
    source = "203.0.113.9"
    for index in range(throttle.SOURCE_LIMIT.failures):
        spoof = _spoofing(spoofs[index % len(spoofs)], index)
        api.get("/token?service=berth", headers={**basic(f"ghost{index}", "guess"), **spoof}, source=source)
    for header in spoofs:
        spoof = _spoofing(header, 254)
        assert api.get("/token?service=berth", headers={**basic("carol"), **spoof}, source=source).status == 429
        posted = api.post("/token", headers={**FORM, **spoof}, body=password_form("carol").encode(), source=source)
        assert posted.status == 429, header
    elsewhere = api.get("/token?service=berth", headers={**basic("carol"), "X-Forwarded-For": source},
                        source="192.0.2.200")
    assert elsewhere.status == 200


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_every_throttled_answer_says_when_to_retry_whoever_was_guessed(api: ApiClient,
                                                                      auth_registry: Registry) -> None:
    for name in ("alice", "nobody-here"):
        for index in range(throttle.USER_LIMIT.failures):
            api.get("/v2/", headers=basic(name, "guess"), source=f"198.51.100.{index}")
    for way, attempt in _attempts(auth_registry.settings.auth_mode).items():
        answers = [attempt(api, name, "another guess", "192.0.2.9") for name in ("alice", "nobody-here")]
        for response in answers:
            assert response.status == 429, (way, response.body)
            assert response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
            assert 0 < int(response.header("Retry-After")) <= throttle.USER_LIMIT.window_seconds
        assert answers[0].body == answers[1].body, way


def test_a_user_name_of_any_length_never_makes_an_oversized_key(api: ApiClient, auth_registry: Registry,
                                                                aws: AwsClients) -> None:
    name = "a" * 1100
    answers: list[Any] = []

    def logins() -> None:
        for way, attempt in _attempts(auth_registry.settings.auth_mode).items():
            for password in ("guess", CI_SHAPED):
                answers.append((way, attempt(api, name, password, "192.0.2.1")))

    sent = dynamodb_requests(aws, logins)
    assert all(response.status == 401 for _, response in answers), [(w, r.status) for w, r in answers]
    oversized = [(operation, len(params["Key"]["sk"]["S"].encode())) for operation, params in sent
                 if "Key" in params and len(params["Key"]["sk"]["S"].encode()) > 1024]
    assert not oversized, oversized
