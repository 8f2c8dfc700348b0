"""The web pages through the API Gateway stand-in and the real handler, on moto: what each page
shows, who may see and do what, the session cookie and CSRF guard, the headers, the limits,
and what a first view costs in AWS calls. (tests/e2e/test_ui_browser.py drives them in Chromium.)"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

import pytest

from chalicelib.auth.permissions import normalise_actions
from chalicelib.auth.secrets import hash_password, new_ci_token
from chalicelib.lifecycle.policy import Lifecycle, parse_policies
from chalicelib.registry import Registry
from chalicelib.storage.accounts import TokenRecord
from chalicelib.storage.keys import blob_pk
from chalicelib.storage.table import to_item
from chalicelib.telemetry import Telemetry
from chalicelib.ui.assets import CSS, JS
from chalicelib.ui.context import HTML
from chalicelib.ui.dispatch import MAX_ANSWER_BYTES
from tests.api.oci_fixtures import Manifest, image_manifest, push_blob, push_manifest, random_blob
from tests.api.test_events import Sink
from tests.api.ui_support import (
    PASSWORD,
    Content,
    Visitor,
    add_users,
    config_blob,
    csrf_of,
    fill,
    text,
    with_settings,
)
from tests.conftest import ApiClient, new_registry
from tests.helpers import AwsCallCounter, load_app


@pytest.fixture(scope="module")
def shared(aws: Any) -> tuple[Registry, Content]:
    """One filled registry for the tests that only look (filling takes a second or two)."""
    registry = new_registry(aws)
    return registry, fill(ApiClient(load_app(registry)), registry)


@pytest.fixture
def content(shared: tuple[Registry, Content]) -> Content:
    return shared[1]


@pytest.fixture
def browser(shared: tuple[Registry, Content], monkeypatch: pytest.MonkeyPatch) -> Visitor:
    """A visitor of the shared registry, auth off."""
    import app as app_module

    monkeypatch.setattr(app_module, "registry", shared[0])
    return Visitor(ApiClient(app_module.app))


@pytest.fixture
def signed_in(shared: tuple[Registry, Content], monkeypatch: pytest.MonkeyPatch) -> Visitor:
    """A visitor of the shared registry with token auth on (and its users), not logged in yet."""
    import app as app_module

    registry = shared[0]
    if registry.accounts.get_user("admin") is None:
        add_users(registry)
    monkeypatch.setattr(app_module, "registry", with_settings(registry, auth_mode="token"))
    return Visitor(ApiClient(app_module.app))


@dataclass
class Own:
    """A registry of the test's own, for tests that change things, and a client of its API
    (auth off) to see what clients see."""

    registry: Registry
    content: Content
    visitor: Visitor
    v2: ApiClient

    def use(self, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> None:
        import app as app_module

        monkeypatch.setattr(app_module, "registry", with_settings(self.registry, **settings))


@pytest.fixture
def own(registry: Registry, client: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Own:
    content = fill(client, registry)
    add_users(registry)
    mine = Own(registry, content, Visitor(client), ApiClient(load_app(registry)))
    mine.use(monkeypatch, auth_mode="token")
    return mine


def cookie_attributes(response: Any, name: str) -> list[str]:
    values = [v for k, v in response.headers if k.lower() == "set-cookie" and v.startswith(f"{name}=")]
    assert len(values) == 1, values
    return [a.strip() for a in values[0].split(";")]


# ---- what the pages show -------------------------------------------------------------------

def names_listed(page: str) -> list[str]:
    return re.findall(r'<a href="/ui/r/([^":@"]+)">', page)


def test_repositories_with_tags_size_and_last_push(browser: Visitor, content: Content) -> None:
    page = text(browser.get("/ui/"))
    assert names_listed(page) == ["other/secret", "team/app", "team/tools"]
    app_row = page.split('href="/ui/r/team/app"')[1].split("</tr>")[0]
    assert '<td class="num">2</td>' in app_row  # 1.0 and multi
    assert "just now" in app_row and "kB" in app_row


def test_search_and_paging(browser: Visitor, content: Content, monkeypatch: pytest.MonkeyPatch) -> None:
    assert names_listed(text(browser.get("/ui/?q=TOOL"))) == ["team/tools"]
    nothing = text(browser.get("/ui/?q=%3Cnothing%3E"))
    assert "No repository you may pull has “&lt;nothing&gt;” in its name." in nothing  # a string, escaped
    monkeypatch.setattr("chalicelib.ui.views.REPOSITORIES_PER_PAGE", 2)
    first = text(browser.get("/ui/"))
    assert names_listed(first) == ["other/secret", "team/app"]
    following = re.search(r'<a href="([^"]+)" rel="next">', first)
    assert following
    second = text(browser.get(following.group(1).replace("&amp;", "&")))
    assert names_listed(second) == ["team/tools"]
    assert 'rel="next"' not in second and "First page" in second


def test_repository_tags_newest_first_with_platforms_and_untagged(browser: Visitor, content: Content) -> None:
    page = text(browser.get("/ui/r/team/app"))
    assert re.findall(r'<a href="/ui/r/team/app:([^"]+)">', page) == ["multi", "1.0"]  # newest first
    multi = page.split('href="/ui/r/team/app:multi"')[1].split("</tr>")[0]
    assert "linux/amd64" in multi and "linux/arm64" in multi and ">index<" in multi
    image = page.split('href="/ui/r/team/app:1.0"')[1].split("</tr>")[0]
    assert "linux/amd64" in image and "1 referrer" in image and "6.3 kB" not in image
    assert "Untagged manifests" not in page
    untagged = text(browser.get("/ui/r/team/app?untagged=1")).split("Untagged manifests")[1]
    assert untagged.count("a platform of") == 2 and untagged.count("refers to") == 1


def test_an_index_lists_its_platforms(browser: Visitor, content: Content) -> None:
    page = text(browser.get("/ui/r/team/app:multi"))
    platforms = page.split("<h2>Platforms</h2>")[1].split("</table>")[0]
    assert re.findall(r'<span class="badge">([^<]+)</span>', platforms) == ["linux/amd64", "linux/arm64"]
    assert f"/ui/r/team/app@{content.amd64.digest}" in platforms
    assert "docker pull localhost/team/app:multi" in page
    assert "podman pull --tls-verify=false localhost/team/app:multi" in page
    assert "skopeo copy --src-tls-verify=false docker://localhost/team/app:multi oci:app:multi" in page


def test_an_image_shows_layers_config_and_its_signature(browser: Visitor, content: Content) -> None:
    page = text(browser.get("/ui/r/team/app:1.0"))
    layers = page.split("<h2>Layers</h2>")[1].split("</table>")[0]
    assert "1 layer, 3.0 kB compressed" in layers and 'title="3,000 bytes"' in layers
    config = page.split("<h2>Config</h2>")[1].split("<h2>")[0]
    for shown in ("[&quot;/app&quot;]", "[&quot;--serve&quot;]", "PATH=/usr/bin", "ARCH=amd64", "/srv", "8080/tcp",
                  "org.opencontainers.image.source", "https://example.com/app", "ADD rootfs.tar /",
                  'datetime="2024-05-01T10:00:00+00:00"'):
        assert shown in config, shown
    referrers = page.split("<h2>Referrers</h2>")[1]
    assert "<h3>Signatures (1)</h3>" in referrers
    assert content.signature.digest in referrers and "ci@example.com" in referrers
    signature = text(browser.get(f"/ui/r/team/app@{content.signature.digest}"))
    assert "Refers to" in signature and content.image.digest in signature
    assert "An artifact: its config is application/vnd.oci.empty.v1+json" in signature


def test_unknown_and_malformed_references_are_not_found(browser: Visitor, content: Content) -> None:
    for path in ("/ui/r/team/app:nope", "/ui/r/team/app@sha256:" + "0" * 64, "/ui/r/no/such",
                 "/ui/r/Team/App", "/ui/r/team/app@sha256:short", "/ui/r/team/app:bad%20tag", "/ui/nothing"):
        response = browser.get(path)
        assert response.status == 404, path
        assert response.header("Content-Type") == "text/html; charset=utf-8"


def test_values_from_manifests_are_escaped(own: Own, monkeypatch: pytest.MonkeyPatch) -> None:
    evil = '<script>alert("x")</script>'
    config = config_blob("amd64", author=evil)
    layer = random_blob(10)
    for blob in (config, layer):
        push_blob(own.v2, "team/evil", blob)
    image = image_manifest(config, [layer], annotations={evil: evil})
    assert push_manifest(own.v2, "team/evil", "1", image).status == 201
    own.use(monkeypatch)
    page = text(own.visitor.get("/ui/r/team/evil:1"))
    assert "<script>alert" not in page
    assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 3


# ---- headers, the gateway, the limits ------------------------------------------------------

def test_types_and_caching(browser: Visitor, content: Content) -> None:
    page = browser.get("/ui/")
    assert page.header("Content-Type") == "text/html; charset=utf-8"
    assert page.header("Cache-Control") == "no-store"
    assert "frame-ancestors 'none'" in (page.header("Content-Security-Policy") or "")
    assert page.header("X-Content-Type-Options") == "nosniff"
    for asset, kind in ((CSS, "text/css; charset=utf-8"), (JS, "text/javascript; charset=utf-8")):
        assert f"/ui/static/{asset.name}" in text(page)
        served = browser.get(f"/ui/static/{asset.name}")
        assert served.status == 200 and served.header("Content-Type") == kind
        assert served.header("Cache-Control") == "public, max-age=31536000, immutable"
        assert served.header("Set-Cookie") is None  # cacheable by anyone
    assert browser.get("/ui/static/berth.css").status == 404
    assert browser.get("/ui").status == 303 and browser.get("/ui").header("Location") == "/ui/"
    head = browser.request("HEAD", "/ui/")
    assert head.status == 200 and head.body == b""
    assert browser.post("/ui/", {}).status == 405


def test_pages_are_outside_the_authorizer(shared: tuple[Registry, Content], monkeypatch: pytest.MonkeyPatch) -> None:
    """With auth on, API Gateway's authorizer guards /v2; the pages log people in themselves."""
    monkeypatch.setenv("BERTH_AUTH", "token")
    api = ApiClient(load_app(with_settings(shared[0], auth_mode="token")))
    assert api.get("/v2/").status == 401  # the gateway's own challenge
    login = api.get("/ui/login")
    assert login.status == 200 and "Password or CI token" in text(login)
    assert api.get("/ui/").status == 303


def test_a_page_too_large_for_lambda_is_cut_short(own: Own, monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 layers and 50,000 non-ASCII characters (six bytes each in Lambda's JSON): the
    tables stop at 500 rows and the answer stays inside Lambda's 6 MB."""
    config, layer = config_blob("amd64"), random_blob(10)
    for blob in (config, layer):
        push_blob(own.v2, "team/huge", blob)
    doc = json.loads(image_manifest(config, [layer]).body)
    doc["layers"] = doc["layers"] * 20_000
    doc["annotations"] = {"note": "é" * 50_000}
    huge = Manifest(json.dumps(doc, ensure_ascii=False).encode(), doc["mediaType"])
    assert push_manifest(own.v2, "team/huge", "1", huge).status == 201
    own.use(monkeypatch)
    response = own.visitor.get("/ui/r/team/huge:1")
    assert response.status == 200
    assert "19500 more layers not shown." in text(response)
    assert len(json.dumps(text(response))) < MAX_ANSWER_BYTES


def test_an_answer_over_the_limit_is_a_page_saying_so() -> None:
    from chalice import Response

    from chalicelib.api.request import RegistryRequest
    from chalicelib.ui.dispatch import _finish

    req = RegistryRequest("GET", "/ui/r/x", {}, {}, b"")
    answer = _finish(Response(body="é" * (MAX_ANSWER_BYTES // 6 + 1), headers={"Content-Type": HTML}), [], req)
    assert answer.status_code == 500 and "Too large to show" in answer.body


def test_every_page_leaves_a_log_line_and_never_the_password(own: Own, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    import app as app_module

    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", f"berth-test-{uuid.uuid4().hex}")  # a fresh logger at INFO
    telemetry = Telemetry()
    monkeypatch.setattr(app_module, "telemetry", telemetry)
    with caplog.at_level("INFO"):
        own.visitor.log_in("reader")
        own.visitor.get("/ui/r/team/app")
        own.visitor.get("/ui/r/other/secret")
    logs = [r.__dict__ for r in caplog.records if r.name == telemetry.logger.name and r.getMessage() == "request"]
    assert [(r["operation"], r["status"], r.get("principal")) for r in logs] == [
        ("ui.login_form", 200, None), ("ui.login", 303, None), ("ui.repository", 200, "reader"),
        ("ui.repository", 404, "reader")]
    assert logs[2]["repository"] == "team/app"
    assert PASSWORD not in caplog.text


# ---- auth off ------------------------------------------------------------------------------

def test_with_auth_off_there_is_no_login(browser: Visitor, content: Content) -> None:
    page = text(browser.get("/ui/"))
    assert "Auth is off" in page and ">Storage<" in page
    assert browser.get("/ui/login").header("Location") == "/ui/"


def test_with_auth_off_actions_still_need_the_forms_token(own: Own, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another site could post a form to a registry on localhost: the token stops it."""
    own.use(monkeypatch)
    visitor = own.visitor
    token = csrf_of(visitor.get("/ui/delete?repo=team/app&ref=1.0"))
    assert visitor.post("/ui/delete", {"repo": "team/app", "ref": "1.0"}).status == 403
    cross = visitor.post("/ui/delete", {"repo": "team/app", "ref": "1.0", "csrf": token},
                         headers={"Origin": "https://evil.example"})
    assert cross.status == 403
    assert own.v2.head("/v2/team/app/manifests/1.0").status == 200
    assert visitor.post("/ui/delete", {"repo": "team/app", "ref": "1.0", "csrf": token}).status == 303
    assert own.v2.head("/v2/team/app/manifests/1.0").status == 404


# ---- sessions ------------------------------------------------------------------------------

def test_login_sets_a_strict_http_only_session(signed_in: Visitor) -> None:
    first = signed_in.get("/ui/r/team/app")
    assert first.status == 303 and first.header("Location") == "/ui/login?next=%2Fui%2Fr%2Fteam%2Fapp"
    wrong = signed_in.log_in("admin", "wrong password")
    assert wrong.status == 401 and "Wrong user name, password or token." in text(wrong)
    assert "berth_session" not in signed_in.cookies
    right = signed_in.log_in("admin", target="/ui/r/team/app")
    assert right.status == 303 and right.header("Location") == "/ui/r/team/app"
    attributes = cookie_attributes(right, "berth_session")
    assert {"HttpOnly", "SameSite=Strict", "Path=/ui/", "Max-Age=3600"} <= set(attributes)
    assert "Secure" not in attributes  # plain HTTP: a browser would drop a Secure cookie
    page = signed_in.get("/ui/r/team/app")
    assert page.status == 200 and "Signed in as <strong>admin</strong>" in text(page)


def test_basic_mode_logs_in_the_same_way(own: Own, monkeypatch: pytest.MonkeyPatch) -> None:
    own.use(monkeypatch, auth_mode="basic")
    assert own.visitor.get("/ui/").status == 303
    assert own.visitor.log_in("reader").status == 303
    assert names_listed(text(own.visitor.get("/ui/"))) == ["team/app", "team/tools"]


def test_over_https_the_cookies_are_secure(signed_in: Visitor) -> None:
    https = {"X-Forwarded-Proto": "https"}
    form = signed_in.get("/ui/login", headers=https)
    assert "Secure" in cookie_attributes(form, "berth_csrf")
    done = signed_in.post("/ui/login", {"csrf": csrf_of(form), "user": "admin", "password": PASSWORD},
                          headers={**https, "Origin": "https://localhost"})
    assert done.status == 303 and "Secure" in cookie_attributes(done, "berth_session")


def test_login_needs_the_forms_token(signed_in: Visitor) -> None:
    token = csrf_of(signed_in.get("/ui/login"))
    for wrong in ("", "x" * len(token)):
        refused = signed_in.post("/ui/login", {"csrf": wrong, "user": "admin", "password": PASSWORD})
        assert refused.status == 403
    cross = signed_in.post("/ui/login", {"csrf": token, "user": "admin", "password": PASSWORD},
                           headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status == 403 and "berth_session" not in signed_in.cookies


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/v2/_catalog", "/ui/\\evil",
                                    "/ui/\r\nSet-Cookie: x=1"])
def test_after_the_login_only_our_pages(signed_in: Visitor, target: str) -> None:
    token = csrf_of(signed_in.get("/ui/login"))
    done = signed_in.post("/ui/login", {"csrf": token, "user": "admin", "password": PASSWORD, "next": target})
    assert done.status == 303 and done.header("Location") == "/ui/"


def test_a_session_holds_only_while_the_account_allows_it(own: Own) -> None:
    accounts, visitor = own.registry.accounts, own.visitor
    visitor.log_in("reader")
    assert visitor.get("/ui/r/team/app").status == 200
    accounts.revoke("reader", "team/*")  # grants hold on the next request
    assert visitor.get("/ui/r/team/app").status == 404
    accounts.grant("reader", "team/*", normalise_actions(["pull"]))
    assert visitor.get("/ui/r/team/app").status == 200
    accounts.set_password("reader", hash_password("a new one", rounds=4))  # a new password ends the session
    assert visitor.get("/ui/r/team/app").status == 303
    assert "berth_session" not in visitor.cookies
    assert visitor.log_in("reader", "a new one").status == 303
    accounts.remove_user("reader")
    assert visitor.get("/ui/r/team/app").header("Location") == "/ui/login?next=%2Fui%2Fr%2Fteam%2Fapp"


def test_a_ci_token_logs_in_until_revoked(own: Own) -> None:
    secret = new_ci_token()
    own.registry.accounts.add_token(TokenRecord("reader", secret.id, secret.secret_hash, None, "ci", int(time.time())))
    assert own.visitor.log_in("reader", str(secret)).status == 303
    assert own.visitor.get("/ui/r/team/app").status == 200
    own.registry.accounts.remove_token("reader", secret.id)
    assert own.visitor.get("/ui/r/team/app").status == 303


def test_sessions_expire_and_are_renewed_while_used(signed_in: Visitor, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.time()
    signed_in.log_in("reader")
    session = signed_in.cookies["berth_session"]
    monkeypatch.setattr("chalicelib.ui.dispatch.time.time", lambda: started + 40 * 60)
    assert signed_in.get("/ui/").status == 200
    assert signed_in.cookies["berth_session"] != session  # renewed past half its life
    monkeypatch.setattr("chalicelib.ui.dispatch.time.time", lambda: started + 40 * 60 + 3601)
    assert signed_in.get("/ui/").status == 303


def test_logout_ends_the_session(signed_in: Visitor) -> None:
    signed_in.log_in("admin")
    stolen = signed_in.cookies["berth_session"]
    out = signed_in.post("/ui/logout", {"csrf": csrf_of(signed_in.get("/ui/"))})
    assert out.status == 303 and out.header("Location") == "/ui/login"
    assert "berth_session" not in signed_in.cookies
    assert signed_in.get("/ui/").status == 303
    assert stolen  # stateless: a copied cookie lasts until it expires (docs/ui.md)


def test_arriving_from_another_site_reloads_from_this_one(signed_in: Visitor) -> None:
    """SameSite=Strict holds the session back on a link from elsewhere: the page loads itself
    again, from here, instead of asking for a login."""
    bounce = signed_in.get("/ui/r/team/app?untagged=1", headers={"Sec-Fetch-Site": "cross-site"})
    assert bounce.status == 200
    assert '<meta http-equiv="refresh" content="0; url=/ui/r/team/app?untagged=1">' in text(bounce)
    crafted = signed_in.get("/ui/r/x%3Burl='%2F%2Fevil'", headers={"Sec-Fetch-Site": "cross-site"})
    assert 'url=/ui/r/x%3Burl%3D%27//evil%27">' in text(crafted)  # a path of ours, whatever it holds


def test_a_form_that_is_not_ours_changes_nothing(signed_in: Visitor) -> None:
    token = csrf_of(signed_in.get("/ui/login"))
    crowded = {"csrf": token, **{f"f{i}": "x" for i in range(20)}}
    assert signed_in.post("/ui/login", crowded).status == 400
    assert signed_in.post("/ui/login", {"csrf": token, "pad": "x" * 20_000}).status == 413
    assert "berth_session" not in signed_in.cookies


# ---- who sees what -------------------------------------------------------------------------

def test_a_reader_sees_only_what_they_may_pull(signed_in: Visitor, content: Content) -> None:
    signed_in.log_in("reader")
    listing = text(signed_in.get("/ui/"))
    assert names_listed(listing) == ["team/app", "team/tools"]
    assert ">Storage<" not in listing and names_listed(text(signed_in.get("/ui/?q=secret"))) == []
    hidden = [signed_in.get(path) for path in ("/ui/r/other/secret", "/ui/r/other/secret:1",
                                               f"/ui/r/other/secret@{content.secret.digest}")]
    absent = [signed_in.get(path) for path in ("/ui/r/other/nothing", "/ui/r/other/nothing:1",
                                               f"/ui/r/other/nothing@{content.secret.digest}")]
    assert [r.status for r in hidden] == [r.status for r in absent] == [404, 404, 404]
    assert {r.body for r in hidden} == {r.body for r in absent}  # nothing tells them apart
    assert signed_in.get("/ui/storage").status == 403
    page = text(signed_in.get("/ui/r/team/app:1.0"))
    assert "<h2>Actions</h2>" not in page and "/ui/delete" not in page


def test_a_reader_cannot_delete(own: Own) -> None:
    own.visitor.log_in("reader")
    assert own.visitor.get("/ui/delete?repo=team/app&ref=1.0").status == 403
    token = csrf_of(own.visitor.get("/ui/"))
    assert own.visitor.post("/ui/delete", {"csrf": token, "repo": "team/app", "ref": "1.0"}).status == 403
    assert own.visitor.post("/ui/delete", {"csrf": token, "repo": "other/secret", "ref": "1"}).status == 404
    assert own.v2.head("/v2/team/app/manifests/1.0").status == 200
    assert own.v2.head("/v2/other/secret/manifests/1").status == 200


# ---- deletes -------------------------------------------------------------------------------

def test_delete_a_tag_after_confirming(own: Own) -> None:
    own.visitor.log_in("deleter")
    page = text(own.visitor.get("/ui/r/team/app:1.0"))
    assert "Delete tag 1.0…" in page and "Delete manifest…" in page
    confirm = own.visitor.get("/ui/delete?repo=team/app&ref=1.0")
    assert confirm.status == 200 and "Delete tag team/app:1.0?" in text(confirm)
    done = own.visitor.post("/ui/delete", {"csrf": csrf_of(confirm), "repo": "team/app", "ref": "1.0"})
    assert done.status == 303 and done.header("Location") == "/ui/r/team/app?deleted=1.0"
    assert "Deleted team/app:1.0." in text(own.visitor.get(done.header("Location") or ""))
    assert "Deleted" not in text(own.visitor.get("/ui/r/team/app?deleted=multi"))  # still there: no such news
    assert own.v2.head("/v2/team/app/manifests/1.0").status == 404
    assert own.v2.head(f"/v2/team/app/manifests/{own.content.image.digest}").status == 200  # the manifest stays


def test_delete_a_manifest_and_the_tags_naming_it(own: Own) -> None:
    own.visitor.log_in("deleter")
    platform = text(own.visitor.get(f"/ui/delete?repo=team/app&ref={own.content.amd64.digest}"))
    assert "It is a platform of" in platform and own.content.index.digest in platform
    confirm = own.visitor.get(f"/ui/delete?repo=team/app&ref={own.content.image.digest}")
    assert "These tags go with it: <code>1.0</code>" in text(confirm)
    assert "1 referrer (signatures, SBOMs…) stay" in text(confirm)
    form = {"csrf": csrf_of(confirm), "repo": "team/app", "ref": own.content.image.digest}
    assert own.visitor.post("/ui/delete", form).status == 303
    assert own.visitor.post("/ui/delete", form).status == 404
    assert own.v2.head(f"/v2/team/app/manifests/{own.content.image.digest}").status == 404
    assert own.v2.head("/v2/team/app/manifests/1.0").status == 404


def test_a_delete_without_the_sessions_token_changes_nothing(own: Own) -> None:
    other = Visitor(own.visitor.api)
    other.log_in("admin")
    foreign = csrf_of(other.get("/ui/"))
    own.visitor.log_in("deleter")
    for form in ({}, {"csrf": ""}, {"csrf": foreign}):
        assert own.visitor.post("/ui/delete", {**form, "repo": "team/app", "ref": "1.0"}).status == 403
    good = csrf_of(own.visitor.get("/ui/"))
    assert own.visitor.post("/ui/delete", {"csrf": good, "repo": "team/app", "ref": "1.0"},
                            headers={"Origin": "http://evil.example"}).status == 403
    assert own.v2.head("/v2/team/app/manifests/1.0").status == 200


def test_immutable_tags_are_not_deleted_here(own: Own, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = parse_policies(json.dumps({"repositories": [{"match": "team/*", "immutable_tags": ["1.*"]}]}))
    own.use(monkeypatch, auth_mode="token", lifecycle=Lifecycle(policies=rules))
    own.visitor.log_in("deleter")
    page = text(own.visitor.get("/ui/r/team/app:1.0"))
    assert '<span class="badge warn">immutable</span>' in page
    assert "Delete tag" not in page and "Delete manifest" not in page
    assert "Immutable in this repository: 1.0" in page
    assert "Delete tag multi…" in text(own.visitor.get("/ui/r/team/app:multi"))
    token = csrf_of(own.visitor.get("/ui/"))
    for ref in ("1.0", own.content.image.digest):
        refused = own.visitor.post("/ui/delete", {"csrf": token, "repo": "team/app", "ref": ref})
        assert refused.status == 403 and "immutable" in text(refused).lower()
    assert own.v2.head("/v2/team/app/manifests/1.0").status == 200


def test_the_delete_switch_holds_here_too(own: Own, monkeypatch: pytest.MonkeyPatch) -> None:
    own.use(monkeypatch, auth_mode="token", lifecycle=Lifecycle(delete_manifests=False))
    own.visitor.log_in("admin")
    page = text(own.visitor.get("/ui/r/team/app:multi"))
    assert "Deleting is switched off on this registry" in page and "Delete tag" not in page
    token = csrf_of(own.visitor.get("/ui/"))
    assert own.visitor.post("/ui/delete", {"csrf": token, "repo": "team/app", "ref": "multi"}).status == 403
    assert own.v2.head("/v2/team/app/manifests/multi").status == 200


def test_a_delete_here_is_an_event_like_one_through_the_api(own: Own, aws: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    sink = Sink(aws)
    settings = replace(own.registry.settings, auth_mode="token", event_bus=sink.bus)
    monkeypatch.setattr("app.registry", Registry.build(settings, aws))
    own.visitor.log_in("deleter")
    token = csrf_of(own.visitor.get("/ui/"))
    assert own.visitor.post("/ui/delete", {"csrf": token, "repo": "team/app", "ref": "1.0"}).status == 303
    (event,) = sink.received()
    assert event["detail-type"] == "Tag Deleted"
    assert {k: event["detail"][k] for k in ("repository", "tag", "actor", "action")} == {
        "repository": "team/app", "tag": "1.0", "actor": "deleter", "action": "delete"}


# ---- storage -------------------------------------------------------------------------------

def test_storage_totals_and_a_dry_run_for_those_who_see_everything(own: Own, monkeypatch: pytest.MonkeyPatch) -> None:
    loose = random_blob(1234)
    push_blob(own.v2, "team/app", loose)  # referenced by nothing, and an hour old (past the grace period)
    own.registry.clients.dynamodb.update_item(  # type: ignore[union-attr]
        TableName=own.registry.settings.table, Key=to_item({"pk": blob_pk(loose.digest), "sk": "blob"}),
        UpdateExpression="SET touched = touched - :h", ExpressionAttributeValues=to_item({":h": 3600}))
    own.use(monkeypatch, auth_mode="token", lifecycle=Lifecycle(gc_grace_hours=0.5))
    own.visitor.log_in("admin")
    page = text(own.visitor.get("/ui/storage"))
    assert '<td>Repositories</td><td class="num">3</td>' in page and '<td>Tags</td><td class="num">4</td>' in page
    assert 'Blobs no manifest references</td><td class="num">1</td><td class="num"><span title="1,234 bytes">' in page
    assert "Work out what a collection would free" in page
    dry = text(own.visitor.get("/ui/storage?collect=1"))
    assert '<td>Blobs removed</td><td class="num">1</td><td class="num"><span title="1,234 bytes">' in dry
    assert own.v2.head(f"/v2/team/app/blobs/{loose.digest}").status == 200  # a dry run changes nothing


# ---- cost ----------------------------------------------------------------------------------

def test_what_a_first_view_costs(own: Own, aws: Any) -> None:
    """docs/performance.md quotes these: the session check is one read, a page one Query per
    repository it shows, and an image config from S3 the first time a container needs it."""
    own.visitor.log_in("reader")
    counter = AwsCallCounter(aws.dynamodb, aws.s3)
    listing = counter.during(lambda: own.visitor.get("/ui/"))
    assert sorted(listing) == ["dynamodb.GetItem", "dynamodb.Query", "dynamodb.Query", "dynamodb.Query"]
    tags = counter.during(lambda: own.visitor.get("/ui/r/team/app"))  # an index and an image: one config
    assert sorted(tags) == ["dynamodb.GetItem", "dynamodb.Query", "s3.GetObject"]
    again = counter.during(lambda: own.visitor.get("/ui/r/team/app"))
    assert sorted(again) == ["dynamodb.GetItem", "dynamodb.Query"]
    image = counter.during(lambda: own.visitor.get("/ui/r/team/app:1.0"))
    assert sorted(image) == ["dynamodb.GetItem", "dynamodb.Query"]  # its config was read for the tag list
    assert counter.during(lambda: own.visitor.get(f"/ui/static/{CSS.name}")) == []
