"""What a caller may not see, after issue 11: no catalog page, `Link` or `last=` says anything of
repositories hidden from the caller, and no log line, at any level, holds a credential or what
it takes to forge or crack one."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.auth.secrets import new_ci_token
from chalicelib.registry import Registry
from chalicelib.storage.accounts import TokenRecord
from chalicelib.storage.clients import AwsClients
from tests.api.auth_support import PASSWORD, basic, bearer, push_image, token_for
from tests.api.test_attack_sessions import logged_in, refresh
from tests.api.test_auth_attacks import as_user, seed
from tests.conftest import ApiClient
from tests.helpers import AwsCallCounter

# Carol may see carol/*; the rest sort before, between and after her repositories.
HIDDEN = ["a/hidden", "carol-x/hidden", "d/hidden", "zz/hidden"]


def _credentials(api: ApiClient, registry: Registry, user: str) -> dict[str, str]:
    if registry.settings.auth_mode == "token":
        return bearer(token_for(api, ["registry:catalog:*"], user=user))
    return basic(user)


def _page(api: ApiClient, query: str, headers: dict[str, str]) -> tuple[list[str], list[str]]:
    """The names a page lists, and the `last` its Link offers (none: [])."""
    response = api.get(f"/v2/_catalog?{query}", headers=headers)
    assert response.status == 200, (query, response.body)
    link = response.header("Link")
    offered = []
    if link:
        target = re.match(r"<([^>]+)>", link)
        assert target is not None, link
        offered = parse_qs(urlsplit(target.group(1)).query)["last"]
    return response.json()["repositories"], offered


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_catalog_edges_tell_nothing_of_hidden_names(api: ApiClient, auth_registry: Registry) -> None:
    seed(api, *HIDDEN, "carol/a", "carol/b")
    carol = _credentials(api, auth_registry, "carol")
    expected = {
        "n=0": ([], []),
        "n=1": (["carol/a"], ["carol/a"]),
        "n=1&last=carol/a": (["carol/b"], []),  # only hidden names follow: no next page
        "n=1&last=carol/b": ([], []),
        "last=a/hidden": (["carol/a", "carol/b"], []),  # a hidden name as `last`: a name like any other
        "n=1&last=carol-x/hidden": (["carol/a"], ["carol/a"]),
        "last=d/hidden": ([], []),
        "last=zzzz": ([], []),  # past the end
        "last=": (["carol/a", "carol/b"], []),
        "n=2": (["carol/a", "carol/b"], []),
    }
    for query, (names, offered) in expected.items():
        assert _page(api, query, carol) == (names, offered), query
    as_user(auth_registry, "dave", {"nothing/*": "pull"})  # may list, sees nothing
    dave = _credentials(api, auth_registry, "dave")
    for query in ("n=0", "n=1", "n=1&last=a/hidden", "n=1&last=carol/a", "n=3", "last=zz"):
        assert _page(api, query, dave) == ([], []), query
    for query in ("n=-1", "n=abc", "last=" + "x" * 256):
        assert api.get(f"/v2/_catalog?{query}", headers=carol).status == 400, query


def test_the_catalogs_work_is_bounded_by_its_page_not_by_what_is_hidden(api: ApiClient, aws: AwsClients) -> None:
    seed(api, "carol/a", *[f"secret/r{i:02d}" for i in range(12)])
    carol = bearer(token_for(api, ["registry:catalog:*"], user="carol"))
    answers = []
    calls = AwsCallCounter(aws.dynamodb).during(lambda: answers.append(api.get("/v2/_catalog?n=1", headers=carol)))
    assert answers[0].json() == {"repositories": ["carol/a"]}
    assert calls.count("dynamodb.Query") <= 3, f"{calls.count('dynamodb.Query')} queries for one page of one name"


def test_a_catalog_token_lists_for_the_account_it_was_issued_to(api: ApiClient, auth_registry: Registry) -> None:
    seed(api, "team/app", "secret/x")
    bobs = bearer(token_for(api, ["registry:catalog:*"], user="bob"))
    assert api.get("/v2/_catalog", headers=bobs).json() == {"repositories": ["team/app"]}
    auth_registry.accounts.remove_user("bob")  # bob leaves; later someone else is bob
    as_user(auth_registry, "bob", {"secret/*": "pull"}, password="someone else's")
    listed = api.get("/v2/_catalog", headers=bobs)
    assert "secret/x" not in listed.body.decode(), listed.body


# ---- logs -----------------------------------------------------------------------------------

@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record at DEBUG, from the root logger and from the loggers that do not propagate
    to it (Chalice's app logger, Powertools' request logger), as a Lambda at DEBUG would write."""
    loggers = [logging.getLogger(name) for name in ("", "berth", "berth-api")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        if caplog.handler not in logger.handlers:
            logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
            if logger.name != "root":
                logger.removeHandler(caplog.handler)


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_no_credential_reaches_the_logs_even_at_debug(api: ApiClient, auth_registry: Registry,
                                                      every_log: pytest.LogCaptureFixture) -> None:
    secret = new_ci_token()
    auth_registry.accounts.add_token(TokenRecord("alice", secret.id, secret.secret_hash, None, "ci", 0))
    secrets = [PASSWORD, "a-wrong-password", str(secret), secret.secret]
    for credentials in (basic("alice"), basic("alice", str(secret))):
        assert push_image(api, "team/app", credentials).status == 201
    api.get("/v2/", headers=basic("alice", "a-wrong-password"))
    if auth_registry.settings.auth_mode == "token":
        tokens = logged_in(api, "alice")
        refreshed = refresh(api, tokens["refresh_token"]).json()
        by_ci = logged_in(api, "alice", str(secret))
        secrets += [tokens["access_token"], tokens["refresh_token"], refreshed["access_token"],
                    refreshed["refresh_token"], by_ci["refresh_token"]]
        for token in (tokens["access_token"], tokens["access_token"][:-4] + "AAAA", tokens["refresh_token"]):
            api.get("/v2/team/app/manifests/1", headers=bearer(token))
        api.get("/token?service=berth", headers=basic("alice", "a-wrong-password"))
    assert every_log.records, "nothing was captured: the fixture does not see the logs"
    text = every_log.text
    for value in secrets:
        # Whole, or its distinctive middle (a log may cut or wrap it).
        assert value not in text and value[len(value) // 4: len(value) // 4 + 16] not in text, value[:12]


def test_signing_keys_and_password_hashes_stay_out_of_the_logs_at_debug(api: ApiClient, auth_registry: Registry,
                                                                       every_log: pytest.LogCaptureFixture) -> None:
    auth_registry.auth.keys.forget()  # a container reads the ring every minute
    token_for(api, ["repository:team/app:pull"])
    api.get("/v2/team/app/manifests/1", headers=basic("alice"))
    key = base64.b64encode(auth_registry.auth.keys().current.key).decode()
    stored_hash = auth_registry.accounts.get_user("alice").password_hash  # type: ignore[union-attr]
    assert stored_hash
    leaks = sorted({record.name for record in every_log.records
                    if key in record.getMessage() or stored_hash in record.getMessage()})
    assert not leaks, f"logged by {leaks}"
