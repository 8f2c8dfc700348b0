"""References, credentials, the auth challenge and token cache, and the resume store: the
client's pure parts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from berth.client import ClientError, Credentials, Reference, ResumeStore, parse_reference
from berth.client.auth import Authenticator, Challenge, parse_challenge
from berth.client.errors import AuthError
from berth.client.reference import is_loopback
from berth.client.resume import Resumable, default_directory
from berth.client.session import RegistrySession


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:5000/team/app:1", Reference("127.0.0.1:5000", "team/app", "1")),
    ("docker://localhost/app", Reference("localhost", "app")),
    ("r.example.com/a/b/c@sha256:" + "a" * 64, Reference("r.example.com", "a/b/c", None, "sha256:" + "a" * 64)),
    ("r.example.com:443/a:v1@sha256:" + "b" * 64, Reference("r.example.com:443", "a", "v1", "sha256:" + "b" * 64)),
    ("alpine:3.19", Reference("docker.io", "library/alpine", "3.19")),
    ("team/app", Reference("docker.io", "team/app")),
])
def test_references_parse(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_references_name_their_api_host_and_print_back() -> None:
    assert parse_reference("alpine").api_host == "registry-1.docker.io"
    assert parse_reference("localhost:5000/x").api_host == "localhost:5000"
    assert str(parse_reference("docker://127.0.0.1:5000/team/app:1")) == "127.0.0.1:5000/team/app:1"


@pytest.mark.parametrize("text", ["127.0.0.1:5000/Team/app", "h.io/app:bad tag", "h.io/app@sha256", "h.io/"])
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(ClientError):
        parse_reference(text)


def test_loopback_registries_speak_plain_http_unless_told() -> None:
    assert [is_loopback(h) for h in ("localhost:5000", "127.0.0.1", "[::1]:5000", "registry.example.com")] == [
        True, True, True, False]
    assert RegistrySession("127.0.0.1:5000").base == "http://127.0.0.1:5000"
    assert RegistrySession("r.example.com").base == "https://r.example.com"
    assert RegistrySession("r.example.com", plain_http=True).base == "http://r.example.com"
    assert RegistrySession("r.example.com").url("/v2/a/blobs/uploads/x?y=1") == "https://r.example.com/v2/a/blobs/uploads/x?y=1"
    assert RegistrySession("r.example.com").url("https://s3.example.com/p") == "https://s3.example.com/p"


def test_credentials_keep_the_password_out_of_sight() -> None:
    creds = Credentials.parse("alice:s3cr:et")
    assert (creds.username, creds.password) == ("alice", "s3cr:et")
    assert "s3cr" not in repr(creds)
    assert Credentials.from_env({"BERTH_USERNAME": "bob", "BERTH_PASSWORD": "pw"}) == Credentials("bob", "pw")
    assert Credentials.from_env({"BERTH_USERNAME": "bob"}) is None
    with pytest.raises(AuthError):
        Credentials.parse("alice")


def test_challenges_parse() -> None:
    header = 'Bearer realm="http://r/token",service="berth",scope="repository:a/b:pull,push"'
    assert parse_challenge(header) == Challenge("bearer", {
        "realm": "http://r/token", "service": "berth", "scope": "repository:a/b:pull,push"})
    assert parse_challenge('Basic realm="Berth"') == Challenge("basic", {"realm": "Berth"})
    assert parse_challenge('Bearer realm="a\\"b"').params == {"realm": 'a"b'}  # type: ignore[union-attr]
    assert parse_challenge("") is None


class TokenService:
    """Stands in for requests.Session.get against a token endpoint."""

    def __init__(self, status: int = 200, lifetime: int = 300) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]], dict[str, str]]] = []
        self.status, self.lifetime = status, lifetime

    def get(self, url: str, params: list[tuple[str, str]], headers: dict[str, str], **_: Any) -> Any:
        self.calls.append((url, params, headers))
        service = self

        class Response:
            status_code = service.status

            def json(self) -> dict[str, Any]:
                return {"token": f"t{len(service.calls)}", "expires_in": service.lifetime}

        return Response()


def test_bearer_tokens_are_fetched_per_scope_cached_and_renewed() -> None:
    now = [1000.0]
    service = TokenService()
    auth = Authenticator(service, Credentials("alice", "pw"), clock=lambda: now[0])  # type: ignore[arg-type]
    scope = "repository:team/app:pull,push"
    assert auth.header(scope) is None  # nothing known before the first challenge
    auth.answer(Challenge("bearer", {"realm": "http://r/token", "service": "berth",
                                      "scope": "repository:team/app:pull"}), scope)
    url, params, headers = service.calls[0]
    assert url == "http://r/token"
    assert params == [("service", "berth"), ("scope", scope), ("scope", "repository:team/app:pull")]
    assert headers["Authorization"] == Credentials("alice", "pw").basic()
    assert auth.header(scope) == "Bearer t1"
    assert auth.header("repository:other:pull") == "Bearer t2"  # another scope: fetched up front
    now[0] += 300
    assert auth.header(scope) == "Bearer t3"  # about to expire: renewed
    assert len(service.calls) == 3


def test_refused_credentials_and_missing_ones_say_so() -> None:
    auth = Authenticator(TokenService(status=401), Credentials("alice", "wrong"))  # type: ignore[arg-type]
    with pytest.raises(AuthError, match="refused the credentials of alice"):
        auth.answer(Challenge("bearer", {"realm": "http://r/token"}), "repository:a:pull")
    anonymous = Authenticator(TokenService(), None)  # type: ignore[arg-type]
    with pytest.raises(AuthError, match="wants credentials"):
        anonymous.answer(Challenge("basic", {}), "repository:a:pull")


def test_basic_challenges_send_the_credentials_from_then_on() -> None:
    auth = Authenticator(TokenService(), Credentials("alice", "pw"))  # type: ignore[arg-type]
    auth.answer(Challenge("basic", {"realm": "Berth"}), "repository:a:pull")
    assert auth.header("repository:b:pull") == Credentials("alice", "pw").basic()
    with pytest.raises(AuthError, match="refused"):
        auth.answer(Challenge("basic", {"realm": "Berth"}), "repository:a:pull")


def test_the_resume_store_keeps_one_private_file_per_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_directory() == tmp_path / "xdg" / "berth" / "uploads"
    store = ResumeStore()
    store.put("r:1", "team/app", "sha256:ab", Resumable("/v2/team/app/blobs/uploads/u1", "direct"))
    store.put("r:1", "team/other", "sha256:ab", Resumable("/v2/team/other/blobs/uploads/u2", "chunked"))
    assert store.get("r:1", "team/app", "sha256:ab") == Resumable("/v2/team/app/blobs/uploads/u1", "direct")
    files = list(store.directory.iterdir())
    assert len(files) == 2 and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert {json.loads(f.read_text())["repository"] for f in files} == {"team/app", "team/other"}
    store.forget("r:1", "team/app", "sha256:ab")
    assert store.get("r:1", "team/app", "sha256:ab") is None
    assert store.get("r:1", "team/other", "sha256:ab") is not None
