"""Docker registry tokens: short-lived JWTs (HS256) listing the access granted, and longer
refresh tokens for the OAuth2 flow containerd and BuildKit use."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from chalicelib.auth.permissions import Scope

ISSUER = "berth"
ALGORITHM = "HS256"
REFRESH_TTL_SECONDS = 7 * 24 * 3600


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class Claims:
    subject: str  # user name; "" for anonymous
    access: dict[tuple[str, str], frozenset[str]]  # (type, name) -> actions granted
    requested: frozenset[tuple[str, str, str]]  # (type, name, action) the client asked for
    kind: str  # "access" or "refresh"

    def allows(self, scope: Scope) -> tuple[str, ...]:
        """Access entries name repositories, or patterns of them (a token asked for no scope)."""
        granted: set[str] = set()
        for (kind, name), actions in self.access.items():
            if kind == scope.type and fnmatchcase(scope.name, name):
                granted |= actions
        return tuple(a for a in scope.actions if a in granted or "*" in granted)

    def asked_for(self, scope: Scope, action: str) -> bool:
        return (scope.type, scope.name, action) in self.requested


class TokenIssuer:
    def __init__(self, key: bytes, service: str, ttl_seconds: int) -> None:
        self._key = key
        self._service = service
        self.ttl_seconds = ttl_seconds

    def _encode(self, claims: dict[str, Any]) -> str:
        import jwt

        return str(jwt.encode(claims, self._key, algorithm=ALGORITHM))

    def _base(self, subject: str, ttl: int, kind: str) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": ISSUER, "sub": subject, "aud": self._service, "iat": now, "nbf": now - 5,
                "exp": now + ttl, "jti": secrets.token_hex(12), "typ": kind}

    def access_token(self, subject: str, granted: list[Scope], requested: list[Scope], ttl: int | None = None) -> str:
        claims = self._base(subject, self.ttl_seconds if ttl is None else ttl, "access")
        claims["access"] = [{"type": s.type, "name": s.name, "actions": list(s.actions)} for s in granted]
        claims["req"] = [str(s) for s in requested]
        return self._encode(claims)

    def refresh_token(self, subject: str) -> str:
        return self._encode(self._base(subject, REFRESH_TTL_SECONDS, "refresh"))

    def verify(self, token: str, kind: str = "access") -> Claims:
        import jwt

        try:
            # Only our algorithm: `alg: none` and key-confusion tokens are refused here.
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], audience=self._service,
                                issuer=ISSUER, options={"require": ["exp", "iat", "sub", "aud", "iss"]})
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None
        if claims.get("typ") != kind:
            raise InvalidToken(f"not an {kind} token")
        access: dict[tuple[str, str], frozenset[str]] = {}
        for entry in claims.get("access", []):
            key = (str(entry.get("type")), str(entry.get("name")))
            access[key] = access.get(key, frozenset()) | frozenset(entry.get("actions", []))
        requested: set[tuple[str, str, str]] = set()
        for text in claims.get("req", []):
            kind_, _, rest = text.partition(":")
            name, _, actions = rest.rpartition(":")
            requested.update((kind_, name, a) for a in actions.split(","))
        return Claims(str(claims["sub"]), access, frozenset(requested), kind)
