"""One upstream registry as the cache talks to it: the token flow (401 challenge → realm →
bearer token, cached per scope until it expires) or Basic credentials, and the few requests
the cache makes.

What the function does is small: manifest GET/HEAD, a blob request whose answer it does not
read (the redirect it gets is handed to the client), listings. Only the copier follows a
redirect, and only to an address it may reach (`check_target`). Credentials go to the
upstream's own origin and its token realm, never to a redirect's host, and never into an
error message.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

from chalicelib.cache import http
from chalicelib.cache.challenge import Challenge, parse_challenge
from chalicelib.cache.http import HttpResponse, Unreachable
from chalicelib.cache.rules import Rule, UpstreamCredentials
from chalicelib.manifests import mediatypes as mt

ACCEPT_MANIFESTS = ", ".join(sorted(mt.MANIFEST_TYPES))
TOKEN_LIMIT = 64 * 1024  # a token response larger than this is not one
DEFAULT_TOKEN_SECONDS = 60  # the token spec's default lifetime
EXPIRY_MARGIN = 10
MAX_REDIRECTS = 5
# The instance metadata service's IPv6 address (its IPv4 one is link-local, refused as such).
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254")})


class NotFound(Exception):
    """The upstream has no such thing (404), or will not show it to these credentials (401,
    403: also Docker Hub's answer for a repository that does not exist)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Unavailable(Exception):
    """The upstream cannot answer now: unreachable, failing (5xx), rate-limiting (429), or it
    answered what a registry does not answer. `retry_after` when it said."""

    def __init__(self, reason: str, retry_after: str | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status


@dataclass(frozen=True)
class Redirect:
    """Where the upstream sends a blob GET: its storage or CDN, a URL the client can use."""

    url: str


@dataclass(frozen=True)
class Direct:
    """The upstream serves the blob bytes itself, at `url`; `open` when it did so without
    credentials (so a client can fetch them there too)."""

    url: str
    open: bool
    size: int | None


@dataclass(frozen=True)
class UpstreamManifest:
    body: bytes
    media_type: str | None
    digest: str | None  # Docker-Content-Digest, as the upstream promised it


@dataclass
class _Token:
    value: str
    expires: float


def _retry_after(response: HttpResponse) -> str | None:
    value = (response.header("retry-after") or "").strip()
    return value if value.isdigit() else None


def address_allowed(address: str, private_ok: bool) -> bool:
    """Whether the copier may fetch from this address. Never link-local (the instance metadata
    service lives there), multicast or unspecified; loopback and private ranges only for an
    upstream that is itself on them."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:169.254.169.254 reaches 169.254.169.254
    ip = mapped or ip
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip in METADATA_ADDRESSES:
        return False
    return private_ok or not (ip.is_loopback or ip.is_private)


class UpstreamRegistry:
    def __init__(self, rule: Rule, credentials: Callable[[], UpstreamCredentials | None],
                 counted: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.monotonic,
                 timeout: float = http.DEFAULT_TIMEOUT) -> None:
        self.rule = rule
        self._credentials = credentials
        self._counted = counted  # told of every request sent upstream (token requests too)
        self._clock = clock
        self._timeout = timeout
        self._lock = threading.Lock()
        self._scheme: Challenge | None = None  # learnt from the first challenge
        self._tokens: dict[str, _Token] = {}

    # ---- requests -------------------------------------------------------------------------

    def manifest(self, repo: str, reference: str, method: str = "GET", limit: int = 0) -> UpstreamManifest:
        """A manifest by tag or digest, in the representation the upstream stores (every type
        Berth serves is accepted). HEAD reads no body."""
        response = self._send(method, f"/v2/{repo}/manifests/{reference}", repo, {"Accept": ACCEPT_MANIFESTS})
        self._expect_found(response)
        try:
            body = response.read(limit) if method == "GET" else b""
        except http.TooLarge:
            raise Unavailable(f"the manifest is larger than {limit} bytes") from None
        finally:
            response.close()
        content_type = (response.header("content-type") or "").split(";")[0].strip() or None
        return UpstreamManifest(body, content_type, response.header("docker-content-digest"))

    def locate_blob(self, repo: str, digest: str) -> Redirect | Direct:
        """Where a client can get the blob's bytes. The body (if the upstream sends the bytes
        itself) is not read: the connection is dropped."""
        path = f"/v2/{repo}/blobs/{digest}"
        response, authorized = self._send_noting_auth("GET", path, repo)
        response.close()
        if response.status in (301, 302, 303, 307, 308):
            location = response.header("location")
            target = urljoin(response.url, location or "")
            if not location or urlsplit(target).scheme not in ("http", "https"):
                raise Unavailable("the upstream redirected a blob request nowhere usable")
            if (urlsplit(target).scheme, urlsplit(target).netloc.lower()) == self.rule.origin and authorized:
                # Back to itself, where our credentials would be needed: no use to a client.
                return Direct(target, False, None)
            return Redirect(target)
        self._expect_found(response)
        return Direct(self.rule.url + path, not authorized, response.length)

    def blob_size(self, repo: str, digest: str) -> int | None:
        response = self._send("HEAD", f"/v2/{repo}/blobs/{digest}", repo)
        response.close()
        self._expect_found(response)
        return response.length

    def open_blob(self, repo: str, digest: str, start: int = 0) -> HttpResponse:
        """The blob's bytes from `start` (a Range request; the answer may still be the whole
        blob, status 200), following the upstream's redirects to addresses the copier may reach."""
        headers = {"Range": f"bytes={start}-"} if start else {}
        response = self._send("GET", f"/v2/{repo}/blobs/{digest}", repo, headers)
        for _ in range(MAX_REDIRECTS):
            if response.status not in (301, 302, 303, 307, 308):
                break
            response.close()
            target = urljoin(response.url, response.header("location") or "")
            self.check_target(target)
            self._counted()
            # Never our credentials to a redirect's host: the URL carries its own authority.
            response = http.request("GET", target, headers, self._timeout)
        self._expect_found(response)
        return response

    def referrers(self, repo: str, digest: str, limit: int) -> bytes:
        response = self._send("GET", f"/v2/{repo}/referrers/{digest}", repo,
                              {"Accept": mt.OCI_INDEX})
        self._expect_found(response)
        return self._body(response, limit)

    def tags(self, repo: str, query: Mapping[str, str], limit: int) -> tuple[bytes, str | None]:
        suffix = f"?{urlencode(query)}" if query else ""
        response = self._send("GET", f"/v2/{repo}/tags/list{suffix}", repo)
        self._expect_found(response)
        return self._body(response, limit), response.header("link")

    # ---- what an answer means ---------------------------------------------------------------

    @staticmethod
    def _body(response: HttpResponse, limit: int) -> bytes:
        try:
            return response.read(limit)
        except http.TooLarge:
            raise Unavailable(f"the upstream's answer is larger than {limit} bytes") from None

    @staticmethod
    def _expect_found(response: HttpResponse) -> None:
        status = response.status
        if status in (200, 206):
            return
        response.close()
        if status in (401, 403, 404):
            raise NotFound(status)
        if status == 429:
            raise Unavailable("the upstream is rate-limiting", _retry_after(response), status)
        if 300 <= status < 400:
            raise Unavailable("the upstream redirected where no redirect belongs (or too often)", status=status)
        raise Unavailable(f"the upstream answered {status}", _retry_after(response), status)

    def check_target(self, url: str) -> None:
        """Refuse a redirect the copier must not follow: another scheme than http(s), plain
        HTTP from an HTTPS upstream, or an address it may not reach (`address_allowed`)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unavailable("the upstream redirected to a URL that is not http(s)")
        if self.rule.url.startswith("https:") and parts.scheme != "https":
            raise Unavailable("the upstream redirected from HTTPS to plain HTTP")
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443, 0,
                                                                   socket.SOCK_STREAM)}
        except OSError:
            raise Unavailable(f"the upstream redirected to {parts.hostname}, which does not resolve") from None
        if not all(address_allowed(str(a), self.rule.on_private_network) for a in addresses):
            raise Unavailable(f"the upstream redirected to {parts.hostname}, an address the cache does not fetch from")

    # ---- authentication ---------------------------------------------------------------------

    def _send(self, method: str, path: str, repo: str, headers: Mapping[str, str] | None = None) -> HttpResponse:
        return self._send_noting_auth(method, path, repo, headers)[0]

    def _send_noting_auth(self, method: str, path: str, repo: str,
                          headers: Mapping[str, str] | None = None) -> tuple[HttpResponse, bool]:
        """A request to the upstream's own origin, authenticated as its last challenge asked;
        after a new challenge, once more. Also says whether credentials or a token went along."""
        scope = f"repository:{repo}:pull"
        url = self.rule.url + path
        for attempt in range(2):
            authorization = self._authorization(scope)
            sent = {**(headers or {}), **({"Authorization": authorization} if authorization else {})}
            self._counted()
            response = self._request(method, url, sent)
            if response.status != 401 or attempt == 1:
                return response, authorization is not None
            challenge = parse_challenge(response.header("www-authenticate"))
            response.close()
            if challenge is None or not self._learn(challenge, scope):
                return response, authorization is not None
        raise AssertionError("unreachable")

    def _request(self, method: str, url: str, headers: Mapping[str, str]) -> HttpResponse:
        try:
            return http.request(method, url, headers, self._timeout)
        except Unreachable as err:
            raise Unavailable(f"the upstream cannot be reached ({err})") from None

    def _authorization(self, scope: str) -> str | None:
        with self._lock:
            scheme = self._scheme
            token = self._tokens.get(scope)
        if scheme is None:
            return None
        if scheme.scheme == "basic":
            credentials = self._credentials()
            return _basic(credentials) if credentials else None
        if token is None or token.expires <= self._clock():
            token = self._fetch_token(scheme, scope)
        return f"Bearer {token.value}"

    def _learn(self, challenge: Challenge, scope: str) -> bool:
        """Take a challenge in; False when answering it again cannot help (credentials already
        refused, or a scheme the cache does not speak)."""
        with self._lock:
            known = self._scheme
            self._scheme = challenge
            self._tokens.pop(scope, None)
        if challenge.scheme == "basic":
            return (known is None or known.scheme != "basic") and self._credentials() is not None
        # A bearer challenge: a fresh token may help (the one sent expired, or none was). Each
        # request answers at most one challenge, so a refusal costs two tries, not a loop.
        return challenge.scheme == "bearer" and bool(challenge.params.get("realm"))

    def _fetch_token(self, challenge: Challenge, scope: str) -> _Token:
        realm = challenge.params["realm"]
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unavailable("the upstream's token realm is not an http(s) URL")
        if self.rule.url.startswith("https:") and parts.scheme != "https":
            raise Unavailable("the upstream's token realm is plain HTTP: credentials would travel unencrypted")
        query = [("scope", scope)]
        if "service" in challenge.params:
            query.insert(0, ("service", challenge.params["service"]))
        credentials = self._credentials()
        headers = {"Authorization": _basic(credentials)} if credentials else {}
        self._counted()
        response = self._request("GET", f"{realm}{'&' if parts.query else '?'}{urlencode(query)}", headers)
        if response.status != 200:
            response.close()
            if response.status in (401, 403):
                raise NotFound(response.status)  # the credentials (or anonymity) do not reach it
            raise Unavailable(f"the upstream's token service answered {response.status}", _retry_after(response),
                              response.status)
        try:
            doc = json.loads(self._body(response, TOKEN_LIMIT))
        except ValueError:
            raise Unavailable("the upstream's token service sent no JSON") from None
        value = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise Unavailable("the upstream's token service sent no token")
        lifetime = doc.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else DEFAULT_TOKEN_SECONDS
        token = _Token(value, self._clock() + max(seconds - EXPIRY_MARGIN, 1.0))
        with self._lock:
            self._tokens[scope] = token
        return token


def _basic(credentials: UpstreamCredentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")
