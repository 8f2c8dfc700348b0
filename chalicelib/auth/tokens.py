"""Docker registry tokens: short-lived JWTs (HS256) listing the access granted, and refresh
tokens for the OAuth2 flow containerd and BuildKit use.

An access token holds `access` (scopes granted, each a concrete repository name, matched by
equality) and, when the client asked for no scope, `grants` (the account's own patterns).
A refresh token is bound to the account (`uid`, which a removed and re-created user does not
share), to the credential that logged in (`cred`: the password's generation, or a CI token's
id), and to the time of that login (`auth_time`): refreshing never extends it past
`auth_time + refresh_ttl`."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.auth.keys import KeyRing
from chalicelib.auth.permissions import Grant, Scope, pattern_matches
from chalicelib.naming import valid_name

ISSUER = "berth"
ALGORITHM = "HS256"


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class Claims:
    subject: str  # user name; "" for anonymous
    access: dict[tuple[str, str], frozenset[str]]  # (type, name) -> actions granted
    kind: str  # "access" or "refresh"
    grants: tuple[Grant, ...] = ()  # the account's patterns, in a token asked for no scope
    uid: str = ""  # refresh tokens: the account, the credential and the login they stand for
    credential: str = ""
    auth_time: int = 0
    expires: int = 0

    def allows(self, scope: Scope) -> tuple[str, ...]:
        """A scope's name is compared, never matched: only the server's grants are patterns."""
        if scope.type == "repository" and not valid_name(scope.name):
            return ()
        granted: set[str] = set(self.access.get((scope.type, scope.name), frozenset()))
        if scope.type == "repository":
            for grant in self.grants:
                if pattern_matches(grant.pattern, scope.name):
                    granted |= grant.actions
        return tuple(a for a in scope.actions if a in granted or "*" in granted)


@dataclass(frozen=True)
class RefreshBinding:
    uid: str
    credential: str
    auth_time: int


class TokenIssuer:
    def __init__(self, keys: Callable[[bool], KeyRing], service: str, ttl_seconds: int,
                 refresh_ttl_seconds: int) -> None:
        self._keys = keys  # the ring; asked again (True) when a token names a key it lacks
        self._service = service
        self.ttl_seconds = ttl_seconds
        self.refresh_ttl_seconds = refresh_ttl_seconds

    def _encode(self, claims: dict[str, Any]) -> str:
        import jwt

        key = self._keys(False).current
        return str(jwt.encode(claims, key.key, algorithm=ALGORITHM, headers={"kid": key.kid}))

    def _base(self, subject: str, expires: int, kind: str) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": ISSUER, "sub": subject, "aud": self._service, "iat": now, "nbf": now - 5,
                "exp": expires, "jti": secrets.token_hex(12), "typ": kind}

    def access_token(self, subject: str, granted: list[Scope], grants: list[Grant] | None = None,
                     not_after: int | None = None, uid: str = "") -> tuple[str, int]:
        """The token, and its lifetime in seconds (the TTL, or less if `not_after` comes first)."""
        now = int(time.time())
        expires = now + self.ttl_seconds if not_after is None else min(now + self.ttl_seconds, not_after)
        claims = self._base(subject, expires, "access")
        claims["access"] = [{"type": s.type, "name": s.name, "actions": list(s.actions)} for s in granted]
        if uid:  # the account it was issued to: the catalog reads that account's grants, no other's
            claims["uid"] = uid
        if grants:
            claims["grants"] = [{"pattern": g.pattern, "actions": sorted(g.actions)} for g in grants]
        return self._encode(claims), expires - now

    def refresh_token(self, subject: str, binding: RefreshBinding) -> str:
        claims = self._base(subject, binding.auth_time + self.refresh_ttl_seconds, "refresh")
        claims.update({"uid": binding.uid, "cred": binding.credential, "auth_time": binding.auth_time})
        return self._encode(claims)

    def _key_for(self, token: str) -> bytes:
        import jwt

        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed key id")
        key = self._keys(False).find(kid) or self._keys(True).find(kid)
        if key is None or not key.verifies_at(time.time()):
            raise InvalidToken("signed with an unknown or retired key")
        return key.key

    def verify(self, token: str, kind: str = "access") -> Claims:
        import jwt

        try:
            # Only our algorithm: `alg: none` and key-confusion tokens are refused here.
            claims = jwt.decode(token, self._key_for(token), algorithms=[ALGORITHM], audience=self._service,
                                issuer=ISSUER, options={"require": ["exp", "iat", "sub", "aud", "iss"]})
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None
        if claims.get("typ") != kind:
            raise InvalidToken(f"not an {kind} token")
        try:
            return _claims(claims, kind)
        except (TypeError, ValueError, KeyError, AttributeError):
            raise InvalidToken("malformed claims") from None


def _claims(claims: dict[str, Any], kind: str) -> Claims:
    access: dict[tuple[str, str], frozenset[str]] = {}
    for entry in claims.get("access", []):
        key = (str(entry["type"]), str(entry["name"]))
        access[key] = access.get(key, frozenset()) | frozenset(str(a) for a in entry["actions"])
    grants = tuple(Grant(str(g["pattern"]), frozenset(str(a) for a in g["actions"])) for g in claims.get("grants", []))
    return Claims(str(claims["sub"]), access, kind, grants, str(claims.get("uid", "")),
                  str(claims.get("cred", "")), int(claims.get("auth_time", 0)), int(claims["exp"]))
