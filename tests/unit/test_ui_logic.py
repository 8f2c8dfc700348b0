"""The web pages' pure logic: escaping, the session cookie and its forgeries, where a login may
lead, and what the pages read out of manifests and configs."""

from __future__ import annotations

import json

import jwt
import pytest

from chalicelib.auth.keys import KeyRing, SigningKey
from chalicelib.auth.permissions import Scope
from chalicelib.auth.tokens import TokenIssuer
from chalicelib.ui.markup import Markup, escape, join, render, url
from chalicelib.ui.model import (
    Descriptor,
    age,
    group_referrers,
    human_size,
    platform_of,
    read_config,
    read_manifest,
    short_digest,
)
from chalicelib.ui.session import (
    MAX_SESSION_SECONDS,
    SESSION_SECONDS,
    SessionSigner,
    local_path,
    parse_cookies,
    password_credential,
    same_token,
    session_key,
    set_cookie,
)

REGISTRY_KEY = b"the registry's signing key, 32 bytes or more"
KEY = session_key(REGISTRY_KEY)
NOW = 1_700_000_000
DIGEST = "sha256:" + "ab" * 32


# ---- markup --------------------------------------------------------------------------------

def test_every_value_is_escaped_unless_it_is_markup() -> None:
    evil = "<img src=x onerror=\"alert('1')\">&"
    assert render("<p title=\"$v\">$v</p>", v=evil) == (
        '<p title="&lt;img src=x onerror=&quot;alert(&#x27;1&#x27;)&quot;&gt;&amp;">'
        "&lt;img src=x onerror=&quot;alert(&#x27;1&#x27;)&quot;&gt;&amp;</p>")
    assert render("<p>$v</p>", v=Markup("<b>kept</b>")) == "<p><b>kept</b></p>"
    assert render("<p>$v</p>", v="$other") == "<p>$other</p>"  # a value is never read as a template
    assert join([escape("<a>"), Markup("<b>")], "<br>") == "&lt;a&gt;<br><b>"
    assert escape(None) == "" and escape(3) == "3"


def test_urls_keep_names_and_encode_the_rest() -> None:
    assert url(f"/ui/r/team/app@{DIGEST}") == f"/ui/r/team/app@{DIGEST}"
    assert url("/ui/", q="a b&c", after=None, start="") == "/ui/?q=a+b%26c"
    assert url("/ui/r/x y\"<") == "/ui/r/x%20y%22%3C"


# ---- sessions ------------------------------------------------------------------------------

def test_a_session_round_trips_and_ends() -> None:
    signer = SessionSigner(KEY)
    token, session = signer.issue("alice", password_credential("hash"), NOW)
    assert signer.read(token, NOW + 10) == session
    assert session.expires == NOW + SESSION_SECONDS
    assert signer.read(token, NOW + SESSION_SECONDS) is None
    assert not session.renew_due(NOW + 10) and session.renew_due(NOW + SESSION_SECONDS // 2 + 1)
    renewed_token, renewed = signer.renewed(session, NOW + SESSION_SECONDS - 60)
    assert renewed.csrf == session.csrf and renewed.started == NOW
    assert signer.read(renewed_token, NOW + SESSION_SECONDS + 60) == renewed
    # Renewed as often as you like, a session never outlives twelve hours after its login.
    late_token, late = signer.renewed(session, NOW + MAX_SESSION_SECONDS - 10)
    assert late.expires == NOW + MAX_SESSION_SECONDS and not late.renew_due(NOW + MAX_SESSION_SECONDS - 5)
    assert signer.read(late_token, NOW + MAX_SESSION_SECONDS) is None


def _claims(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {"sub": "alice", "cred": "password:x", "csrf": "c" * 32, "auth_time": NOW,
                                 "iat": NOW, "exp": NOW + 60, "aud": "berth-ui", "typ": "ui-session"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 with our 32-byte key
@pytest.mark.parametrize("forgery", [
    jwt.encode(_claims(), b"another key, also 32 bytes or more", algorithm="HS256"),
    jwt.encode(_claims(), KEY, algorithm="HS512"),
    jwt.encode(_claims(), "", algorithm="none"),
    jwt.encode(_claims(typ="access"), KEY, algorithm="HS256"),
    jwt.encode(_claims(aud="berth"), KEY, algorithm="HS256"),
    jwt.encode(_claims(csrf=None), KEY, algorithm="HS256"),
    jwt.encode(_claims(auth_time=NOW - MAX_SESSION_SECONDS), KEY, algorithm="HS256"),
    "not a token", "",
])
def test_forged_or_foreign_sessions_are_refused(forgery: str) -> None:
    assert SessionSigner(KEY).read(forgery, NOW) is None


def test_a_registry_token_is_not_a_session() -> None:
    """Even signed with the registry's own key: the session key is derived from it, not it."""
    registry_key = REGISTRY_KEY
    ring = KeyRing((SigningKey("k", registry_key, 0),))
    token, _ = TokenIssuer(lambda again=False: ring, "berth", 300, 3600).access_token(
        "alice", [Scope("repository", "team/app", ("pull",))])
    assert SessionSigner(session_key(registry_key)).read(token, NOW) is None
    assert SessionSigner(registry_key).read(token, NOW) is None  # other audience and type too


def test_tokens_compare_only_when_both_are_there() -> None:
    assert same_token("abc", "abc") and not same_token("abc", "abd")
    assert not same_token("", "") and not same_token(None, "abc") and not same_token("abc", None)


def test_cookies() -> None:
    assert parse_cookies('a=1; berth_session="x.y.z"; a=2; junk; =3') == {"a": "1", "berth_session": "x.y.z"}
    assert set_cookie("s", "v", 60, secure=False) == "s=v; Path=/ui/; Max-Age=60; HttpOnly; SameSite=Strict"
    assert set_cookie("s", "v", 60, secure=True).endswith("; Secure")


@pytest.mark.parametrize(("target", "goes_to"), [
    ("/ui/r/team/app:1", "/ui/r/team/app:1"), ("/ui/?q=a&after=b", "/ui/?q=a&after=b"),
    ("//evil.example", "/ui/"), ("https://evil.example/ui/", "/ui/"), ("/ui\\evil", "/ui/"),
    ("/ui/\\\\evil.example", "/ui/"), ("/ui/\r\nSet-Cookie: a=b", "/ui/"), ("/v2/_catalog", "/ui/"),
    ("/ui/é", "/ui/"), ("", "/ui/"), (None, "/ui/"),
])
def test_a_login_leads_only_to_these_pages(target: str | None, goes_to: str) -> None:
    assert local_path(target, "/ui/") == goes_to


# ---- manifests and configs -----------------------------------------------------------------

def _descriptor(media_type: str, size: int, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": DIGEST, "size": size, **extra}


def test_an_image_manifest() -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": _descriptor("application/vnd.oci.image.config.v1+json", 100),
                       "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", 1000,
                                              annotations={"org.opencontainers.image.title": "a.txt"}),
                                  _descriptor("x", "not a size"), "junk"],
                       "annotations": {"k": "v", "n": 1}}).encode()
    view = read_manifest(body, "application/vnd.oci.image.manifest.v1+json")
    assert view.is_image and not view.is_index and view.kind is None
    assert [layer.title for layer in view.layers] == ["a.txt"]  # malformed entries left out
    assert view.compressed_size == 1100 and view.annotations == {"k": "v"}


def test_an_artifact_and_an_index() -> None:
    artifact = read_manifest(json.dumps({
        "config": _descriptor("application/vnd.oci.empty.v1+json", 2), "layers": [],
        "subject": _descriptor("application/vnd.oci.image.manifest.v1+json", 5)}).encode(),
        "application/vnd.oci.image.manifest.v1+json")
    assert not artifact.is_image and artifact.kind == "application/vnd.oci.empty.v1+json"
    assert artifact.subject == DIGEST
    index = read_manifest(json.dumps({"manifests": [
        _descriptor("m", 1, platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        _descriptor("m", 1, platform={"os": "unknown", "architecture": "unknown"},
                    annotations={"vnd.docker.reference.type": "attestation-manifest"}),
    ]}).encode(), "application/vnd.oci.image.index.v1+json")
    assert index.is_index and [c.platform for c in index.children] == ["linux/arm64/v8", "unknown/unknown"]
    assert [c.runnable for c in index.children] == [True, False]
    assert read_manifest(b"not json", "x").layers == () and read_manifest(b"[]", "x").config is None


def test_platforms() -> None:
    assert platform_of({"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.1"}) == \
        "windows/amd64 (10.0.17763.1)"
    assert platform_of({"os": "linux"}) == "linux" and platform_of({}) is None and platform_of("x") is None


def test_an_image_config() -> None:
    config = read_config(json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Entrypoint": ["/bin/sh", "-c"], "Cmd": None, "Env": ["A=1", 2], "Labels": {"a": "b"},
                   "ExposedPorts": {"80/tcp": {}, "53/udp": {}}},
        "history": [{"created_by": "RUN x"}, {"empty_layer": True, "comment": "c"}, "junk"]}).encode())
    assert config is not None
    assert config.platform == "linux/amd64" and config.entrypoint == ("/bin/sh", "-c") and config.cmd is None
    assert config.env == ("A=1",) and config.labels == {"a": "b"} and config.exposed_ports == ("53/udp", "80/tcp")
    assert [(h.created_by, h.empty_layer) for h in config.history] == [("RUN x", False), (None, True)]
    assert read_config(b"\xff") is None and read_config(b"[1]") is None


def test_referrers_are_grouped_by_what_they_are() -> None:
    def referrer(artifact_type: str | None) -> Descriptor:
        return Descriptor("application/vnd.oci.image.manifest.v1+json", DIGEST, 1, artifact_type=artifact_type)

    groups = group_referrers([referrer("application/example"), referrer("application/spdx+json"),
                              referrer("application/vnd.dev.cosign.artifact.sig.v1+json"),
                              referrer("application/vnd.in-toto+json"), referrer(None),
                              referrer("application/vnd.cncf.notary.signature")])
    assert [(kind, len(items)) for kind, items in groups] == [
        ("Signatures", 2), ("SBOMs", 1), ("Attestations", 1), ("Other artifacts", 2)]


def test_words_for_numbers() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 1234, 99_949, 99_950, 999_499, 999_500, 123_456_789, 10**18)] == [
        "0 B", "999 B", "1.0 kB", "1.2 kB", "99.9 kB", "100 kB", "999 kB", "1.0 MB", "123 MB", "1000 PB"]
    assert [age(s) for s in (-5, 30, 60, 3599, 7200, 86400 * 3, 86400 * 400)] == [
        "just now", "just now", "1 minute ago", "59 minutes ago", "2 hours ago", "3 days ago", "1 year ago"]
    assert short_digest(DIGEST) == "sha256:abababababab" and short_digest("odd") == "odd"
