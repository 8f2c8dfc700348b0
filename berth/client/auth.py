"""Registry authentication: credentials, the `WWW-Authenticate` challenge, and the Docker token
flow (Bearer tokens from the challenge's realm, cached per scope) or HTTP Basic."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from berth.client.errors import AuthError, RegistryError
from chalicelib.cache.challenge import Challenge, parse_challenge

USERNAME_ENV, PASSWORD_ENV = "BERTH_USERNAME", "BERTH_PASSWORD"
TOKEN_TIMEOUT = 30
# Renew a token this long before the registry would refuse it.
EXPIRY_MARGIN = 15
# The token spec's default when a token endpoint does not say how long a token lasts.
DEFAULT_TOKEN_SECONDS = 60


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or CI token). The password never appears in `repr`."""

    username: str
    password: str = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> Credentials:
        """`user:password`."""
        username, colon, password = text.partition(":")
        if not colon or not username:
            raise AuthError("credentials must be USER:PASSWORD")
        return cls(username, password)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Credentials | None:
        """From BERTH_USERNAME and BERTH_PASSWORD, or None when either is unset."""
        username, password = environ.get(USERNAME_ENV), environ.get(PASSWORD_ENV)
        return cls(username, password) if username and password is not None else None

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def challenge_of(response: requests.Response) -> Challenge | None:
    # Behind a REST API Gateway a Lambda's own header arrives renamed.
    return parse_challenge(response.headers.get("WWW-Authenticate")
                           or response.headers.get("x-amzn-Remapped-WWW-Authenticate"))


@dataclass(frozen=True)
class _Token:
    value: str
    expires: float


class Authenticator:
    """The `Authorization` header for each request to one registry. Learns the scheme from the
    first challenge; afterwards fetches bearer tokens before they are needed, one per scope
    (`repository:team/app:pull,push`, several separated by spaces), and renews them before they
    expire."""

    def __init__(self, http: requests.Session, credentials: Credentials | None, verify: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._http, self._credentials, self._verify, self._clock = http, credentials, verify, clock
        self._lock = threading.Lock()
        self._basic = False
        self._bearer: Challenge | None = None
        self._tokens: dict[str, _Token] = {}

    @property
    def who(self) -> str:
        """Whom requests speak for, for messages."""
        return f"the credentials of {self._credentials.username}" if self._credentials else "anonymous access"

    def header(self, scope: str) -> str | None:
        with self._lock:
            if self._basic and self._credentials:
                return self._credentials.basic()
            if self._bearer is None:
                return None
            token = self._tokens.get(scope)
            if token is None or token.expires <= self._clock():
                token = self._tokens[scope] = self._fetch(self._bearer, scope)
            return f"Bearer {token.value}"

    def answer(self, challenge: Challenge, scope: str) -> None:
        """Get ready to retry a request the registry refused with `challenge`."""
        with self._lock:
            if challenge.scheme == "basic":
                if self._credentials is None:
                    raise AuthError("the registry wants credentials (--creds, or BERTH_USERNAME and BERTH_PASSWORD)")
                if self._basic:
                    raise AuthError(f"the registry refused the credentials of {self._credentials.username}")
                self._basic = True
            elif challenge.scheme == "bearer":
                if "realm" not in challenge.params:
                    raise AuthError("the registry's Bearer challenge names no realm")
                self._bearer = challenge
                self._tokens[scope] = self._fetch(challenge, scope)
            else:
                raise AuthError(f"unsupported authentication scheme {challenge.scheme!r}")

    def _fetch(self, challenge: Challenge, scope: str) -> _Token:
        realm = challenge.params["realm"]
        scopes = list(dict.fromkeys(scope.split() + challenge.params.get("scope", "").split()))
        query = [("service", challenge.params["service"])] if "service" in challenge.params else []
        query += [("scope", s) for s in scopes]
        headers = {"Authorization": self._credentials.basic()} if self._credentials else {}
        response = self._http.get(realm, params=query, headers=headers, timeout=TOKEN_TIMEOUT, verify=self._verify)
        if response.status_code in (401, 403):
            raise AuthError(f"the token service at {urlsplit(realm).netloc} refused {self.who}")
        if response.status_code != 200:
            raise RegistryError.from_response(response)
        doc = response.json()
        value = doc.get("token") or doc.get("access_token")
        if not isinstance(value, str) or not value:
            raise AuthError(f"the token service at {urlsplit(realm).netloc} sent no token")
        lifetime = doc.get("expires_in") or DEFAULT_TOKEN_SECONDS
        return _Token(value, self._clock() + max(float(lifetime) - EXPIRY_MARGIN, 1.0))
