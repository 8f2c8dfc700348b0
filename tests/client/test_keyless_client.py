"""The client side of keyless access: the credential-helper protocol as docker speaks it,
what `berth login` writes, ID tokens from the CI's environment (a GitHub-like token service
on the loopback), and the checks `berth trust add` makes before storing a rule."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from berth.keyless import sources
from berth.keyless.helper import NOT_FOUND, run
from berth.keyless.store import Entry, Store, use_helper
from chalicelib.auth import iam
from tests.oidc_issuer import Issuer, serving


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "berth" / "credentials.json")


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with serving() as running:
        yield running


def helper(store: Store, action: str, stdin: str = "", env: dict[str, str] | None = None,
           monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str]:
    if monkeypatch is not None:
        for name in (sources.ID_TOKEN_ENV, sources.GITHUB_URL_ENV, sources.GITHUB_TOKEN_ENV, sources.AUDIENCE_ENV):
            monkeypatch.delenv(name, raising=False)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
    out = io.StringIO()
    status = run([action], io.StringIO(stdin), out, store)
    return status, out.getvalue()


def test_store_get_list_erase_as_docker_calls_them(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    given = {"ServerURL": "registry.example.com", "Username": "bot", "Secret": "berth_0123_secret"}
    assert helper(store, "store", json.dumps(given), monkeypatch=monkeypatch) == (0, "\n")
    status, out = helper(store, "get", "registry.example.com\n", monkeypatch=monkeypatch)
    assert status == 0 and json.loads(out) == given
    assert json.loads(helper(store, "list")[1]) == {"registry.example.com": "bot"}
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600  # it holds a secret
    assert helper(store, "erase", "registry.example.com") == (0, "\n")
    assert helper(store, "get", "registry.example.com", monkeypatch=monkeypatch) == (1, NOT_FOUND + "\n")
    assert helper(store, "erase", "registry.example.com") == (1, NOT_FOUND + "\n")
    assert helper(store, "frobnicate")[0] == 1
    assert helper(store, "store", "not json")[0] == 1


def test_keyless_user_names_store_the_method_not_the_proof(store: Store) -> None:
    given = {"ServerURL": "registry.example.com", "Username": "oidc", "Secret": "an.id.token"}
    assert helper(store, "store", json.dumps(given))[0] == 0
    assert store.get("registry.example.com") == Entry("oidc")
    assert "an.id.token" not in store.path.read_text()


def test_in_github_actions_get_fetches_an_id_token_for_the_registry(store: Store, issuer: Issuer,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    env = {sources.GITHUB_URL_ENV: f"{issuer.url}/github?api-version=2.0",
           sources.GITHUB_TOKEN_ENV: issuer.request_token}
    status, out = helper(store, "get", "Registry.Example.com:443", env=env, monkeypatch=monkeypatch)
    assert status == 0, out
    answer = json.loads(out)
    assert answer["Username"] == "oidc"
    assert jwt.decode(answer["Secret"], options={"verify_signature": False})["aud"] == "registry.example.com"
    # An audience set where the job runs, or by `berth login --oidc --audience`, wins.
    store.put("registry.example.com", Entry("oidc", audience="custom"))
    out = helper(store, "get", "registry.example.com", env=env, monkeypatch=monkeypatch)[1]
    assert jwt.decode(json.loads(out)["Secret"], options={"verify_signature": False})["aud"] == "custom"
    # Without the job's request token, GitHub gives nothing, and the helper says so.
    env[sources.GITHUB_TOKEN_ENV] = "wrong"
    status, out = helper(store, "get", "registry.example.com", env=env, monkeypatch=monkeypatch)
    assert status == 1 and "did not give an ID token" in out


def test_an_id_token_the_ci_put_in_the_environment_is_used_as_it_is(store: Store,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    status, out = helper(store, "get", "registry.example.com", env={sources.ID_TOKEN_ENV: "gitlab.id.token"},
                         monkeypatch=monkeypatch)
    assert status == 0 and json.loads(out)["Secret"] == "gitlab.id.token"
    store.put("registry.example.com", Entry("oidc"))
    status, out = helper(store, "get", "registry.example.com", monkeypatch=monkeypatch)
    assert status == 1 and "no OIDC ID token here" in out


def test_aws_entries_answer_a_request_signed_for_that_registry(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE12")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    store.put("registry.example.com", Entry("aws"))
    status, out = helper(store, "get", "registry.example.com", monkeypatch=monkeypatch)
    assert status == 0
    answer = json.loads(out)
    assert answer["Username"] == "aws" and "the-secret" not in answer["Secret"]
    checked = iam.check(answer["Secret"], "registry.example.com", time.time())
    assert checked.host == "sts.eu-central-1.amazonaws.com"
    with pytest.raises(iam.IamRefused):
        iam.check(answer["Secret"], "another.example.com", time.time())


def test_berth_login_keeps_the_rest_of_dockers_config(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"ghcr.io": {"auth": "abc"}}, "credHelpers": {"ecr.aws": "ecr-login"},
                                  "psFormat": "table"}))
    use_helper("https://Registry.Example.com/", config)
    assert json.loads(config.read_text()) == {
        "auths": {"ghcr.io": {"auth": "abc"}}, "psFormat": "table",
        "credHelpers": {"ecr.aws": "ecr-login", "registry.example.com": "berth"}}


def test_berth_login_without_check_writes_both_files(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker"), "BERTH_CONFIG_DIR": str(tmp_path / "berth")}
    result = subprocess.run([sys.executable, "-m", "berth.cli", "login", "--aws", "registry.example.com",
                             "--no-check"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "docker" / "config.json").read_text()) == {
        "credHelpers": {"registry.example.com": "berth"}}
    assert Store(tmp_path / "berth" / "credentials.json").get("registry.example.com") == Entry("aws")


@pytest.mark.parametrize("args, message", [
    (["--issuer", "https://token.actions.githubusercontent.com", "--audience", "r"], "at least one claim"),
    (["--issuer", "https://token.actions.githubusercontent.com", "--audience", "r", "--claim", "repository=*"],
     "matches anything"),
    (["--issuer", "http://issuer.example.com", "--audience", "r", "--claim", "repository=org/app"], "https URL"),
    (["--aws-principal", "arn:aws:iam::*:role/ci"], "12-digit account"),
    (["--aws-principal", "arn:aws:iam::123456789012:role/ci", "--issuer", "https://x"], "either OIDC"),
    (["--aws-principal", "123456789012", "--grant", "team/app"], "PATTERN=ACTIONS"),
    # Grant patterns as `berth user grant` takes them: `*` and `?`, nothing else.
    (["--aws-principal", "123456789012", "--grant", "team/[!x]*=pull"], "wildcards"),
    (["--aws-principal", "123456789012", "--grant", "team/app=fly"], "unknown action"),
])
def test_berth_trust_add_refuses_rules_before_touching_the_registry(args: list[str], message: str) -> None:
    # No registry is running on this port: each refusal comes before any storage is reached.
    grants = [] if "--grant" in args else ["--grant", "team/app=pull"]
    result = subprocess.run([sys.executable, "-m", "berth.cli", "trust", "add", *args, *grants, "--table", "none",
                             "--region", "us-east-1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and message in result.stderr, result.stderr


@pytest.mark.parametrize("name", ["oidc", "aws"])
def test_the_keyless_user_names_cannot_be_taken(name: str) -> None:
    result = subprocess.run([sys.executable, "-m", "berth.cli", "user", "add", name, "--password-stdin", "--table",
                             "none", "--region", "us-east-1"], input="pw\n", capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "keyless" in result.stderr
