"""The signing keys OIDC issuers publish, fetched through their discovery document and kept
per Lambda container.

Only issuers a trust rule names are ever fetched (the caller checks that first), over HTTPS
(plain HTTP to this machine only when the tests allow it), with short timeouts, a size limit
and no redirects. Keys are kept for an hour; a key id not among them triggers a new fetch,
at most once a minute per issuer, so tokens with made-up key ids cannot make us hammer it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.auth.federation import Refused, issuer_allowed

KEYS_TTL_SECONDS = 3600
MIN_REFETCH_SECONDS = 60
FETCH_TIMEOUT_SECONDS = 5
MAX_DOCUMENT_BYTES = 512 * 1024
DISCOVERY_PATH = "/.well-known/openid-configuration"

log = logging.getLogger("berth.keyless")


class KeysUnavailable(Refused):
    pass


def fetch_json(url: str, http_loopback: bool) -> Any:
    """GET a JSON document from an issuer: HTTPS, a few seconds, a few hundred KiB, no redirects."""
    import urllib.error
    import urllib.request

    if not issuer_allowed(url, http_loopback):
        raise KeysUnavailable(f"refusing to fetch {url!r}: not https")

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # the 3xx then surfaces as an HTTPError

    opener = urllib.request.build_opener(NoRedirects)
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "berth"})
    try:
        with opener.open(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
            body = response.read(MAX_DOCUMENT_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise KeysUnavailable(f"{url}: {error}") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise KeysUnavailable(f"{url}: document too large")
    try:
        return json.loads(body)
    except ValueError:
        raise KeysUnavailable(f"{url}: not JSON") from None


def published_keys(issuer: str, get: Callable[[str], Any]) -> list[dict[str, Any]]:
    """The issuer's keys, found through its discovery document, which must name it exactly."""
    discovery = get(issuer.rstrip("/") + DISCOVERY_PATH)
    if not isinstance(discovery, dict) or discovery.get("issuer") != issuer:
        raise KeysUnavailable(f"{issuer}: the discovery document names another issuer")
    jwks_uri = discovery.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise KeysUnavailable(f"{issuer}: the discovery document names no jwks_uri")
    document = get(jwks_uri)
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise KeysUnavailable(f"{issuer}: no key set at {jwks_uri}")
    return [k for k in keys if isinstance(k, dict)]


@dataclass
class _Entry:
    keys: list[dict[str, Any]] = field(default_factory=list)
    fetched: float | None = None  # when `keys` arrived
    attempted: float = float("-inf")  # the last fetch, whatever its outcome
    lock: threading.Lock = field(default_factory=threading.Lock)


class IssuerKeys:
    """Keys by issuer, fetched on demand. `fetch(issuer)` returns an issuer's key list."""

    def __init__(self, fetch: Callable[[str], list[dict[str, Any]]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def _entry(self, issuer: str) -> _Entry:
        with self._lock:
            return self._entries.setdefault(issuer, _Entry())

    def key(self, issuer: str, kid: str | None) -> dict[str, Any]:
        """The issuer's key with this id (or its only key, for a token that names none)."""
        entry = self._entry(issuer)
        with entry.lock:
            now = self._clock()
            stale = entry.fetched is None or now - entry.fetched > KEYS_TTL_SECONDS
            found = _pick(entry.keys, kid)
            if (stale or found is None) and now - entry.attempted >= MIN_REFETCH_SECONDS:
                entry.attempted = now
                try:
                    entry.keys, entry.fetched = self._fetch(issuer), now
                except KeysUnavailable as error:
                    # Keep serving the keys we had: an issuer's outage should not stop pushes.
                    log.warning("OIDC keys of %s not refreshed: %s", issuer, error)
                found = _pick(entry.keys, kid)
            if found is None:
                raise KeysUnavailable(f"{issuer} has no key {kid!r}")
            return found


def _pick(keys: list[dict[str, Any]], kid: str | None) -> dict[str, Any] | None:
    if kid is None:
        return keys[0] if len(keys) == 1 else None
    return next((k for k in keys if k.get("kid") == kid), None)
