"""HTTP to one registry: its base URL, authentication, and retries of transient failures."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

from berth.client.auth import Authenticator, Credentials, challenge_of
from berth.client.errors import AuthError, ClientError, RegistryError
from berth.client.reference import is_loopback

USER_AGENT = "berth-client/0.1"
TIMEOUT = (15, 300)  # connect, read (seconds)
ATTEMPTS = 4
# Throttling and gateway hiccups: worth another try. Anything else is the registry's answer.
TRANSIENT = frozenset({429, 502, 503, 504})
# Enough pooled connections for every thread of a push to keep its own.
POOL_SIZE = 64

# A request body: bytes, or a function returning a fresh readable (with __len__, and close()
# if it holds a file) per attempt, so a request can be sent again after a retry or a new token.
Body = bytes | Callable[[], Any] | None


def new_http() -> requests.Session:
    http = requests.Session()
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=POOL_SIZE)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    http.headers["User-Agent"] = USER_AGENT
    return http


def backoff(attempt: int) -> float:
    return float(min(0.5 * 2**attempt, 8.0))


class RegistrySession:
    """Requests to one registry (`host[:port]`). Plain HTTP for loopback hosts unless told
    otherwise, HTTPS elsewhere; `insecure` skips TLS certificate checks."""

    def __init__(self, host: str, *, credentials: Credentials | None = None, plain_http: bool | None = None,
                 insecure: bool = False, http: requests.Session | None = None) -> None:
        plain = is_loopback(host) if plain_http is None else plain_http
        self.host = host
        self.base = f"{'http' if plain else 'https'}://{host}"
        self.http = http or new_http()
        self.verify = not insecure
        self.auth = Authenticator(self.http, credentials, self.verify)

    def url(self, path: str) -> str:
        """An absolute URL for a path (or a Location header, which may already be absolute)."""
        return urljoin(self.base + "/", path)

    def request(self, method: str, path: str, *, scope: str, expect: Collection[int],
                params: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
                body: Body = None, stream: bool = False) -> requests.Response:
        """Send a request needing `scope`, answering one auth challenge and retrying transient
        failures; raises AuthError for a refusal, RegistryError for any other status not in
        `expect`."""
        url, answered, attempt, overtaken = self.url(path), False, 0, 0
        while True:
            sent = dict(headers or {})
            authorization = self.auth.header(scope)
            if authorization:
                sent["Authorization"] = authorization
            data: Any = body() if callable(body) else body
            try:
                response = self.http.request(method, url, params=params, headers=sent, data=data, stream=stream,
                                             allow_redirects=False, timeout=TIMEOUT, verify=self.verify)
            except (requests.ConnectionError, requests.Timeout) as error:
                attempt += 1
                if attempt >= ATTEMPTS:
                    raise ClientError(f"{method} {path.split('?')[0]}: {self.host} did not answer: {error}") from error
                time.sleep(backoff(attempt))
                continue
            finally:
                if hasattr(data, "close"):
                    data.close()
            challenge = challenge_of(response) if response.status_code == 401 else None
            if challenge is not None and overtaken < ATTEMPTS and self.auth.header(scope) != authorization:
                response.close()  # another thread answered a challenge meanwhile: try what it got
                overtaken += 1
                continue
            if challenge is not None and not answered:
                response.close()
                self.auth.answer(challenge, scope)
                answered = True
                continue
            if response.status_code in TRANSIENT and attempt + 1 < ATTEMPTS:
                response.close()
                attempt += 1
                time.sleep(backoff(attempt))
                continue
            if response.status_code in (401, 403) and response.status_code not in expect:
                refused = RegistryError.from_response(response)
                response.close()
                raise AuthError(f"{refused} ({self.host} refused {self.auth.who}; wanted {scope or 'access'})")
            if response.status_code not in expect:
                failure = RegistryError.from_response(response)
                response.close()
                raise failure
            return response

    def external(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                 body: Any = None, stream: bool = False) -> requests.Response:
        """One request to a URL outside the registry (a presigned S3 URL): no credentials, no
        retries, any status (the caller decides)."""
        return self.http.request(method, url, headers=dict(headers or {}), data=body, stream=stream,
                                 allow_redirects=False, timeout=TIMEOUT, verify=self.verify)
