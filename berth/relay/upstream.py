"""The upstream registry: where it is, and registry clients (berth.client) that act upstream
with the credentials of the client a request came from."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from berth.client import AuthError, Credentials, RegistryClient
from berth.client.auth import Authenticator, Challenge
from berth.client.reference import is_loopback


@dataclass(frozen=True)
class Upstream:
    host: str  # host[:port]
    plain_http: bool
    insecure: bool = False

    @property
    def origin(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.host}"

    @classmethod
    def parse(cls, text: str, insecure: bool = False) -> Upstream:
        """`https://registry.example.com`, `http://127.0.0.1:5000`, or `host[:port]` (plain HTTP
        for loopback hosts, as clients assume). Registries serve `/v2/` at their root, so a URL
        with a path is refused."""
        url = urlsplit(text if "://" in text else f"//{text}")
        if url.scheme not in ("", "http", "https") or not url.netloc:
            raise ValueError(f"{text!r} is not a registry URL (https://HOST[:PORT])")
        if url.path.strip("/") or url.query or url.fragment or "@" in url.netloc:
            raise ValueError(f"{text!r}: the registry must be at the root of its host (no path, query or user)")
        plain = url.scheme == "http" if url.scheme else is_loopback(url.netloc)
        return cls(url.netloc, plain, insecure)

    def client(self, authorization: str | None) -> RegistryClient:
        """A client acting with a request's `Authorization`: Basic credentials as they are
        (the client library then logs in with them, and renews tokens as needed), anything
        else (a bearer token the client got for the upstream) passed on unchanged."""
        credentials = basic_credentials(authorization)
        client = RegistryClient(self.host, credentials=credentials, plain_http=self.plain_http,
                                insecure=self.insecure)
        if authorization and credentials is None:
            client.session.auth = PassedOn(client.session.http, authorization)
        return client


def basic_credentials(authorization: str | None) -> Credentials | None:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return Credentials.parse(base64.b64decode(value.strip(), validate=True).decode())
    except (binascii.Error, UnicodeDecodeError, AuthError):
        return None


class PassedOn(Authenticator):
    """Sends one `Authorization` header with every request. The relay holds no credentials to
    get another, so a challenge means the upstream refused it (say, the token expired)."""

    def __init__(self, http: requests.Session, authorization: str) -> None:
        super().__init__(http, None)
        self._authorization = authorization

    def header(self, scope: str) -> str | None:
        return self._authorization

    def answer(self, challenge: Challenge, scope: str) -> None:
        raise AuthError("the upstream registry refused the client's token (expired, or not for this repository)")
