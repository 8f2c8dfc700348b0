"""One entry point for every `/ui` request: find the page, know the visitor, guard every POST
against cross-site requests, render any refusal or failure as a page, and set the headers
every answer carries (types, caching, a strict content security policy)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from chalice import Response

from chalicelib.api.dispatch import realm_base
from chalicelib.api.request import RegistryRequest
from chalicelib.auth.authenticator import Principal
from chalicelib.registry import Registry
from chalicelib.telemetry import RequestRecord, Telemetry
from chalicelib.ui import pages
from chalicelib.ui.context import HTML, Context, PageError, page, redirect
from chalicelib.ui.routes import LOGOUT, find_page
from chalicelib.ui.session import (
    CSRF_COOKIE,
    CSRF_COOKIE_SECONDS,
    CSRF_LENGTH,
    SESSION_COOKIE,
    SESSION_SECONDS,
    clear_cookie,
    new_csrf,
    parse_cookies,
    same_token,
    set_cookie,
)
from chalicelib.ui.visitor import Visitor, check_session, everyone, signer

log = logging.getLogger("berth.ui")

# Lambda answers at most 6,291,456 bytes, the JSON around the page included; pages keep their
# tables short (pages.MAX_ROWS), and this is the last guard.
MAX_ANSWER_BYTES = 6_000_000
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@dataclass
class _Seen:
    """What the answer found out, for the log line and the cookies."""

    operation: str = "ui"
    principal: str = ""
    cookies: list[str] = field(default_factory=list)


def handle(req: RegistryRequest, registry: Registry, telemetry: Telemetry | None = None) -> Response:
    """The page's answer; with `telemetry`, one log line and the request metric, as registry
    requests leave (never the form, which may hold a password)."""
    seen = _Seen()
    try:
        response = _answer(req, registry, time.time(), seen)
    except PageError as refused:
        response = page(pages.error(None, refused.title, refused.detail), refused.status)
    except Exception:
        log.exception("the page %s %s failed", req.method, req.path[:300])
        response = page(pages.error(None, "Something went wrong", "The registry could not show this page. "
                                                                  "Try again; if it persists, see the logs."), 500)
    response = _finish(response, seen.cookies, req)
    if telemetry is not None:
        telemetry.record(RequestRecord(
            request_id=req.request_id, method=req.method, operation=seen.operation,
            repository=req.params.get("name") or None, status=response.status_code, error_code=None,
            principal=seen.principal, bytes_in=0))
    return response


def _answer(req: RegistryRequest, registry: Registry, now: float, seen: _Seen) -> Response:
    if req.path == "/ui":  # the cookies' path is /ui/
        return redirect(pages.HOME)
    found, req.params, allowed = find_page(req.method, req.path)
    if found is None:
        if allowed:
            raise PageError(405, "Not allowed", f"This page answers {' and '.join(allowed)} only.")
        raise PageError(404, "Not found", "There is no such page.")
    seen.operation = f"ui.{found.view.__name__}"
    if found.static:
        return found.view(Context(req, registry, everyone(""), now))
    secure = realm_base(req, registry.settings.public_url).startswith("https://")
    visitor = _visitor(req, registry, now, secure)
    seen.cookies, seen.principal = visitor.cookies, visitor.name
    if visitor.session is None and registry.settings.auth_mode != "none" and not found.public:
        return _unknown_visitor(req)
    context = Context(req, registry, visitor, now)
    if req.method == "POST":
        _check_origin(context)
    return found.view(context)


def _visitor(req: RegistryRequest, registry: Registry, now: float, secure: bool) -> Visitor:
    """Who is asking: everyone with auth off; else the session's user, if the account still
    allows it, or an anonymous visitor (who may only log in). Cookies to set ride along."""
    cookies = parse_cookies(req.header("cookie"))
    csrf, set_cookies = cookies.get(CSRF_COOKIE, ""), []
    if len(csrf) != CSRF_LENGTH:
        csrf = new_csrf()
        set_cookies.append(set_cookie(CSRF_COOKIE, csrf, CSRF_COOKIE_SECONDS, secure))
    if registry.settings.auth_mode == "none":
        visitor = everyone(csrf)
        visitor.cookies = set_cookies
        return visitor
    sessions = signer(registry)
    session = sessions.read(cookies.get(SESSION_COOKIE), int(now))
    principal = check_session(registry, session, now) if session is not None else None
    if session is None or principal is None:
        if SESSION_COOKIE in cookies:
            set_cookies.append(clear_cookie(SESSION_COOKIE, secure))
        return Visitor(Principal("", grants=[]), None, csrf, set_cookies)
    if session.renew_due(int(now)):
        token, session = sessions.renewed(session, int(now))
        set_cookies.append(set_cookie(SESSION_COOKIE, token, SESSION_SECONDS, secure))
    # Forms carry the session's token from now on; the cookie one is for the login form.
    return Visitor(principal, session, session.csrf, [c for c in set_cookies if c.startswith(SESSION_COOKIE)])


def _unknown_visitor(req: RegistryRequest) -> Response:
    """A page that needs a login, without one."""
    if req.method == "POST":
        if req.path == LOGOUT:
            return redirect(pages.HOME + "login")
        raise PageError(403, "Not done: your session has ended", "Log in again, then try once more.")
    target = pages.url(req.path) + (f"?{urlencode({k: v[0] for k, v in req.query.items()})}" if req.query else "")
    if req.header("sec-fetch-site") == "cross-site":
        # Arriving from another site the browser held the SameSite=Strict session back: load
        # the page again from here, which sends it, rather than ask for a login.
        return page(pages.bounce(target))
    return redirect(pages.url(pages.HOME + "login", next=target))


def _check_origin(ctx: Context) -> None:
    """Every POST comes from these pages: not from another site (Origin, Sec-Fetch-Site, where
    the browser sends them), and with the visitor's CSRF token (which another site cannot read)."""
    req, public_url = ctx.req, ctx.registry.settings.public_url
    origin = req.header("origin")
    ours = {realm_base(req, None)} | ({public_url.rstrip("/")} if public_url else set())
    cross_site = req.header("sec-fetch-site") == "cross-site" or (origin is not None and origin not in ours)
    if cross_site or not same_token(ctx.form.get("csrf"), ctx.visitor.csrf):
        raise PageError(403, "Not done: the form had expired",
                        "Nothing was changed. Go back, reload the page and try again.")


def _finish(response: Response, cookies: list[str], req: RegistryRequest) -> Response:
    headers = response.headers
    if headers.get("Content-Type", HTML) == HTML:
        headers.update(SECURITY_HEADERS)
        headers.setdefault("Cache-Control", "no-store")
    else:
        headers["X-Content-Type-Options"] = "nosniff"
    own = headers.get("Set-Cookie")
    every = cookies + (own if isinstance(own, list) else [own] if own else [])
    if every:
        headers["Set-Cookie"] = every if len(every) > 1 else every[0]
    if isinstance(response.body, str) and len(json.dumps(response.body)) > MAX_ANSWER_BYTES:
        log.error("the page %s is too large to answer (%d characters)", req.path[:300], len(response.body))
        too_large = page(pages.error(None, "Too large to show", "This page would exceed what the registry can "
                                                                "answer in one response."), 500)
        return _finish(too_large, [], req)
    return response
