"""Keyless login: an OIDC ID token (user `oidc`) or a signed STS request (user `aws`) as the
password, turned into the grants of the trust rules that match the identity it proves.

`Authenticator.login` hands these two user names here. What comes back is a list of grants
that also says whom it speaks for and until when: a registry token must not outlive the ID
token that earned it, and is never refreshed (the identity has no account to check again).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from chalicelib.auth.authenticator import BadCredentials
from chalicelib.auth.federation import AWS, OIDC, Refused, aws_rule_matches, grants_of, oidc_rule_matches
from chalicelib.auth.permissions import Grant
from chalicelib.settings import Settings
from chalicelib.storage.trust import TrustStore

if TYPE_CHECKING:
    from chalicelib.auth.jwks import IssuerKeys

# chalicelib.auth.oidc, .iam and .jwks are imported on the first keyless login: most
# containers never see one, and cold start pays for every module.

OIDC_USER, AWS_USER = "oidc", "aws"
# A verified STS identity is remembered this long (never past its signature's age limit), so
# Basic mode does not call STS on every request. Grants are worked out anew every time.
IDENTITY_CACHE_SECONDS = 60

log = logging.getLogger("berth.keyless")


class KeylessGrants(list[Grant]):
    """Grants earned by an outside identity: `subject` names it (for tokens, events and logs),
    `expires` is when its proof stops being valid (None: no limit of its own)."""

    def __init__(self, grants: list[Grant], subject: str, expires: int | None) -> None:
        super().__init__(grants)
        self.subject = subject
        self.expires = expires


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def server_id(settings: Settings) -> str | None:
    """How clients name this registry, which a signed STS request must carry."""
    from chalicelib.auth import iam

    if settings.server_id:
        return iam.normalise_server_id(settings.server_id)
    return iam.normalise_server_id(urlsplit(settings.public_url).netloc) if settings.public_url else None


def issuer_keys(http_loopback: bool, clock: Callable[[], float] = time.monotonic) -> IssuerKeys:
    """Issuers' keys, fetched over HTTPS (or plain HTTP on the loopback, where allowed)."""
    from chalicelib.auth.jwks import IssuerKeys, fetch_json, published_keys

    return IssuerKeys(lambda issuer: published_keys(issuer, lambda url: fetch_json(url, http_loopback)), clock)


class KeylessLogin:
    def __init__(self, settings: Settings, trust: TrustStore, keys: IssuerKeys | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._trust = trust
        self._keys = keys  # made on the first OIDC login
        self._clock = clock
        self._lock = threading.Lock()
        self._identities: dict[str, tuple[float, str]] = {}

    @staticmethod
    def handles(user: str) -> bool:
        return user in (OIDC_USER, AWS_USER)

    def login(self, user: str, password: str) -> KeylessGrants:
        try:
            return self._oidc(password) if user == OIDC_USER else self._aws(password)
        except Refused as error:
            # Why goes to the log (never the token); the caller learns only that it failed.
            log.info("%s login refused: %s", user, error)
            raise BadCredentials(f"{user} login refused") from None

    def _oidc(self, token: str) -> KeylessGrants:
        from chalicelib.auth import oidc

        if self._keys is None:
            self._keys = issuer_keys(self._settings.oidc_http_loopback)
        issuer = oidc.unverified_issuer(token)
        rules = [r for r in self._trust.rules() if r.kind == OIDC and r.issuer == issuer]
        if not rules:
            raise oidc.InvalidIdToken(f"no rule trusts issuer {_printable(issuer)!r}")
        _, kid = oidc.header(token)
        claims = oidc.verify(token, self._keys.key(issuer, kid), issuer, {r.audience for r in rules}, self._clock())
        grants = grants_of(rules, lambda rule: oidc_rule_matches(rule, issuer, claims))
        if grants is None:
            raise oidc.InvalidIdToken(f"no rule's conditions hold for {_printable(str(claims.get('sub')))!r}")
        return KeylessGrants(grants, f"oidc:{_printable(str(claims.get('sub', '')))}", int(claims["exp"]))

    def _aws(self, password: str) -> KeylessGrants:
        arn = self._caller(password)
        grants = grants_of([r for r in self._trust.rules() if r.kind == AWS], lambda rule: aws_rule_matches(rule, arn))
        if grants is None:
            raise Refused(f"no rule trusts {_printable(arn)!r}")
        return KeylessGrants(grants, f"aws:{_printable(arn)}", None)

    def _caller(self, password: str) -> str:
        from chalicelib.auth import iam

        identity = server_id(self._settings)
        if identity is None:
            raise iam.IamRefused("BERTH_PUBLIC_URL or BERTH_SERVER_ID must name this registry for IAM login")
        now = self._clock()
        request = iam.check(password, identity, now)
        key = hashlib.sha256(password.encode()).hexdigest()
        with self._lock:
            cached = self._identities.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        arn = iam.caller_arn(request, self._settings.sts_endpoint)
        until = min(now + IDENTITY_CACHE_SECONDS, request.signed_at + iam.MAX_AGE_SECONDS)
        with self._lock:
            if len(self._identities) > 1000:
                self._identities.clear()
            self._identities[key] = (until, arn)
        return arn

