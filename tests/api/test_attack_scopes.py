"""Scope widening, tried again after issue 11: every other way to spell a repository a user
was not granted, in the scopes of `/token` (GET and the OAuth2 POST) and in request paths,
in token and Basic modes. Eve may pull and push `eve/ap?` (eve/app, eve/apx), never eve/apple."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import jwt
import pytest

from chalicelib.registry import Registry
from tests.api.auth_support import PASSWORD, assert_denied, basic, bearer, push_image, token_for
from tests.api.test_auth_attacks import FORM, as_user, seed
from tests.conftest import ApiClient

GRANTED = {"eve/app", "eve/apx"}  # what `eve/ap?` covers of what is pushed here
# Names that are not `eve/apple` but could be read as it, or as a pattern covering it.
LOOKALIKES = [
    "EVE/APPLE", "Eve/apple", "eve/Apple",
    "eve/\u0430pple",  # Cyrillic a
    "eve/\uff41pple",  # fullwidth a
    "eve/apple\u200b",  # zero-width space
    "eve/app\u0131e",  # dotless i
    "eve/apple\u0301",  # combining accent
    "eve/%61pple", "eve%2Fapple", "eve%252Fapple", "eve/%2A",
    "eve/app/../apple", "eve/../eve/apple", "eve/./apple", "../eve/apple", "eve/..",
    "eve/apple/", "/eve/apple", "eve//apple", "eve/apple/.",
    "eve/apple\x00", "eve/apple\n", "eve/apple\t", "eve/apple ", " eve/apple",
    "eve/apple:latest", "eve/apple@sha256:00",
    "eve/ap.*", "eve/ap(ple|p)", "eve/ap[pl]+e", "eve/ap{ple}", "eve/ap\\ple", "eve/ap%", "eve/ap_",
    "eve/" + "a" * 300, "eve/" + "apple/" * 60 + "x",
]


@pytest.fixture
def eve(api: ApiClient, auth_registry: Registry) -> None:
    as_user(auth_registry, "eve", {"eve/ap?": "pull,push"})
    seed(api, "eve/app", "eve/apple")


def _claimed(token: str) -> set[str]:
    claims = jwt.decode(token, options={"verify_signature": False})
    return {entry["name"] for entry in claims["access"] if entry["type"] == "repository"}


def _assert_reaches_nothing_but_eves(api: ApiClient, token: str) -> None:
    assert _claimed(token) <= GRANTED, _claimed(token)
    assert_denied(api.get("/v2/eve/apple/manifests/1", headers=bearer(token)))
    head = api.head("/v2/eve/apple/manifests/1", headers=bearer(token))
    assert head.status == 401 and head.header("WWW-Authenticate").endswith('error="insufficient_scope"')
    assert_denied(push_image(api, "eve/apple", bearer(token), tag="evil"))


@pytest.mark.usefixtures("eve")
@pytest.mark.parametrize("kind", ["repository", "repository(plugin)"])
def test_no_spelling_of_a_name_widens_a_token(api: ApiClient, kind: str) -> None:
    for name in LOOKALIKES:
        scope = quote(f"{kind}:{name}:pull,push", safe="")
        asked = api.get(f"/token?service=berth&scope={scope}", headers=basic("eve"))
        assert asked.status == 200, (name, asked.body)
        _assert_reaches_nothing_but_eves(api, asked.json()["token"])
        form = f"grant_type=password&username=eve&password={quote(PASSWORD)}&service=berth&scope={scope}"
        posted = api.post("/token", headers=FORM, body=form.encode())
        assert posted.status == 200, (name, posted.body)
        _assert_reaches_nothing_but_eves(api, posted.json()["access_token"])


@pytest.mark.usefixtures("eve")
def test_repeated_and_space_separated_scopes_add_up_to_the_grants_only(api: ApiClient) -> None:
    scopes = ["repository:eve/app:pull", "repository:eve/app:push,delete", "repository:eve/ap?:pull",
              "repository:eve/apple:pull repository:eve/app:*", "repository:eve/apple:pull,push",
              "registry:catalog:*", "registry:eve/apple:pull", "repository:eve/apple:*,pull"]
    token = token_for(api, [quote(s, safe="") for s in scopes], user="eve")
    granted: dict[tuple[str, str], set[str]] = {}
    for entry in jwt.decode(token, options={"verify_signature": False})["access"]:
        granted.setdefault((entry["type"], entry["name"]), set()).update(entry["actions"])
    assert granted == {("repository", "eve/app"): {"pull", "push"}, ("registry", "catalog"): {"*"}}
    _assert_reaches_nothing_but_eves(api, token)
    assert_denied(api.delete("/v2/eve/app/manifests/1", headers=bearer(token)))  # no delete was granted
    assert api.get("/v2/eve/app/manifests/1", headers=bearer(token)).status == 200


def _path_answers(api: ApiClient, name: str, headers: dict[str, str]) -> list[Any]:
    encoded = quote(name, safe="/%")
    return [api.get(f"/v2/{encoded}/manifests/1", headers=headers),
            api.head(f"/v2/{encoded}/manifests/1", headers=headers),
            api.get(f"/v2/{encoded}/tags/list", headers=headers),
            api.post(f"/v2/{encoded}/blobs/uploads/", headers=headers)]


@pytest.mark.usefixtures("eve")
@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_no_spelling_of_a_name_in_a_path_reaches_a_repository_not_granted(api: ApiClient,
                                                                          auth_registry: Registry) -> None:
    """With Basic credentials, and in token mode with a token carrying eve's own patterns (the
    kind asked for no scope): a name in a path is a name, and eve/apple stays out of reach."""
    credentials = [basic("eve")]
    if auth_registry.settings.auth_mode == "token":
        credentials.append(bearer(token_for(api, [], user="eve")))
    for headers in credentials:
        for name in LOOKALIKES:
            for response in _path_answers(api, name, headers):
                assert response.status in (400, 401, 403, 404), (name, response.status, response.body)
                if response.body:  # HEAD has none
                    code = response.json()["errors"][0]["code"]
                    assert code in ("NAME_INVALID", "DENIED", "UNSUPPORTED"), (name, response.body)
        # ...while the names eve was granted answer, however they are encoded.
        assert api.get("/v2/eve/app/manifests/1", headers=headers).status == 200
        assert api.get("/v2/eve/ap%70/manifests/1", headers=headers).status == 200


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_a_path_is_decoded_once_and_alike_by_the_authorizer_and_the_function(api: ApiClient) -> None:
    """`team%2Fapp` is team/app for both, and `team%252Fapp` the invalid name `team%2Fapp` for
    both: the refusal of a name bob may not read is the gateway's, with its challenge."""
    seed(api, "team/app", "carol/a")
    assert api.get("/v2/team%2Fapp/manifests/1", headers=basic("bob")).status == 200
    twice = api.get("/v2/team%252Fapp/manifests/1", headers=basic("bob"))
    assert twice.status == 400 and twice.json()["errors"][0]["code"] == "NAME_INVALID"
    refused = api.get("/v2/carol%2Fa/manifests/1", headers=basic("bob"))
    assert refused.status in (401, 403) and refused.json()["errors"][0]["code"] == "DENIED"
    assert refused.header("x-amzn-Remapped-WWW-Authenticate") is None
