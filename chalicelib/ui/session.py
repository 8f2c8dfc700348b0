"""The web pages' session cookie and CSRF tokens. Pure logic (no storage, no HTTP).

A session is a JWT (HS256) in an HttpOnly, SameSite=Strict cookie, signed with a key derived
from the registry's signing key, so it can never pass for a registry token (other key, other
audience, other type). It names the user and the credential they logged in with (a
fingerprint of the password hash, or the CI token's id), so that on every request the account
can be checked again: a removed user, a changed password or a revoked token ends the session
at once, and grants are read afresh each time. It lasts an hour, renewed while in use, and
never more than twelve hours after the login.

Forms carry a CSRF token: the session's own, or (without a session: the login form, and every
form when auth is off) the value of a separate random cookie, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from chalicelib.auth.secrets import same

SESSION_COOKIE = "berth_session"
CSRF_COOKIE = "berth_csrf"
COOKIE_PATH = "/ui/"
SESSION_SECONDS = 3600
MAX_SESSION_SECONDS = 12 * 3600
CSRF_COOKIE_SECONDS = 12 * 3600
_CSRF_BYTES = 24
_ALGORITHM = "HS256"
_AUDIENCE = "berth-ui"
_TYPE = "ui-session"


@dataclass(frozen=True)
class Session:
    user: str
    credential: str  # "password:<fingerprint>" or "token:<id>"
    csrf: str
    started: int  # the login
    expires: int

    def renew_due(self, now: int) -> bool:
        """Past half its life, and renewing still extends it."""
        return self.expires - now < SESSION_SECONDS // 2 and self.expires < self.started + MAX_SESSION_SECONDS


def session_key(registry_key: bytes) -> bytes:
    return hmac.new(registry_key, b"berth web session", hashlib.sha256).digest()


def password_credential(password_hash: str | None) -> str:
    """A fingerprint of the stored hash: a new password gives another, ending old sessions."""
    return "password:" + hashlib.sha256((password_hash or "").encode("utf-8")).hexdigest()[:32]


def token_credential(token_id: str) -> str:
    return f"token:{token_id}"


class SessionSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(self, user: str, credential: str, now: int, started: int | None = None,
              csrf: str | None = None) -> tuple[str, Session]:
        start = now if started is None else started
        session = Session(user, credential, csrf or new_csrf(), start,
                          min(now + SESSION_SECONDS, start + MAX_SESSION_SECONDS))
        import jwt

        claims = {"sub": user, "cred": credential, "csrf": session.csrf, "auth_time": start, "iat": now,
                  "exp": session.expires, "aud": _AUDIENCE, "typ": _TYPE}
        return str(jwt.encode(claims, self._key, algorithm=_ALGORITHM)), session

    def renewed(self, session: Session, now: int) -> tuple[str, Session]:
        """The same session (same login, same CSRF token, so open forms still work), extended."""
        return self.issue(session.user, session.credential, now, session.started, session.csrf)

    def read(self, token: str | None, now: int) -> Session | None:
        """The session a cookie holds; None when absent, forged, expired or not ours."""
        if not token:
            return None
        import jwt

        try:
            claims = jwt.decode(token, self._key, algorithms=[_ALGORITHM], audience=_AUDIENCE,
                                options={"require": ["exp", "sub", "aud"], "verify_exp": False,
                                         "verify_iat": False, "verify_nbf": False})
        except jwt.PyJWTError:
            return None
        fields = (claims.get("sub"), claims.get("cred"), claims.get("csrf"))
        if claims.get("typ") != _TYPE or not all(isinstance(f, str) and f for f in fields):
            return None
        started, expires = claims.get("auth_time"), claims.get("exp")
        if not isinstance(started, int) or not isinstance(expires, int):
            return None
        # Checked here against the caller's clock, so tests and the renewal agree on "now".
        if now >= expires or now >= started + MAX_SESSION_SECONDS:
            return None
        return Session(str(fields[0]), str(fields[1]), str(fields[2]), started, expires)


def new_csrf() -> str:
    return secrets.token_urlsafe(_CSRF_BYTES)


CSRF_LENGTH = len(new_csrf())  # what any token new_csrf makes measures


def same_token(sent: str | None, expected: str | None) -> bool:
    if not sent or not expected:
        return False
    return same(sent, expected)


# ---- cookies -------------------------------------------------------------------------------

def parse_cookies(header: str | None) -> dict[str, str]:
    """The Cookie header's pairs; the first of a repeated name wins (the most specific path,
    as browsers order them)."""
    cookies: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    return cookies


def set_cookie(name: str, value: str, max_age: int, secure: bool) -> str:
    """A Set-Cookie value: never readable by script, never sent along cross-site requests."""
    attributes = [f"{name}={value}", f"Path={COOKIE_PATH}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict"]
    if secure:
        attributes.append("Secure")
    return "; ".join(attributes)


def clear_cookie(name: str, secure: bool) -> str:
    return set_cookie(name, "", 0, secure)


def local_path(target: str | None, default: str) -> str:
    """Where to go after the login: a path of these pages, never another site (`//host`,
    `/\\host`, a scheme) and nothing a header could be split with."""
    if not target or not target.startswith("/ui/") or any(c in target for c in "\\\r\n\t") or \
            not (target.isascii() and target.isprintable()):
        return default
    return target
