"""Authentication and authorization of registry requests, in the three modes:

- `none`: everyone may do everything (the local default);
- `basic`: each request carries a user's password or CI token (HTTP Basic);
- `token`: each request carries a registry token from `/token` (the Docker token flow).

Refusals are 401 with a challenge where new credentials could help, 403 `DENIED` where they
could not (the caller is known, or already asked for this access and was refused).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.auth import challenge
from chalicelib.auth.permissions import ACTIONS, Grant, Scope, granted, may_read
from chalicelib.auth.secrets import check_password, parse_ci_token, same
from chalicelib.auth.tokens import Claims, InvalidToken, TokenIssuer
from chalicelib.errors import Oci, RegistryError
from chalicelib.settings import Settings
from chalicelib.storage.accounts import ANONYMOUS, AccountStore

if TYPE_CHECKING:
    from chalicelib.auth.keyless import KeylessLogin

# Verified passwords are remembered this long per container, so Basic mode does not pay
# bcrypt on every request. CI tokens are cheap to check and are never cached (revocation
# must take effect at once).
PASSWORD_CACHE_SECONDS = 60


class BadCredentials(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    name: str  # "" when anonymous
    grants: list[Grant] | None = None  # from the account; None with auth off
    claims: Claims | None = None  # from a registry token

    def allows(self, scope: Scope) -> tuple[str, ...]:
        if self.claims is not None:
            return self.claims.allows(scope)
        if self.grants is None:
            return scope.actions
        return granted(self.grants, scope)

    def may_read(self, repo: str) -> bool:
        return "pull" in self.allows(Scope("repository", repo, ("pull",)))


EVERYONE = Principal("")


def basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise BadCredentials("not Basic credentials")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise BadCredentials("malformed Basic credentials") from None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        raise BadCredentials("malformed Basic credentials")
    return user, password


class Authenticator:
    def __init__(self, settings: Settings, accounts: AccountStore, signing_key: Callable[[], bytes],
                 keyless: KeylessLogin | None = None) -> None:
        self.settings = settings
        self._keyless = keyless
        self._accounts = accounts
        self._signing_key = signing_key
        self._issuer: TokenIssuer | None = None
        self._lock = threading.Lock()
        self._verified: dict[str, tuple[float, list[Grant]]] = {}

    @property
    def mode(self) -> str:
        return self.settings.auth_mode

    @property
    def issuer(self) -> TokenIssuer:
        if self._issuer is None:
            self._issuer = TokenIssuer(self._signing_key(), self.settings.service, self.settings.token_ttl)
        return self._issuer

    # ---- who ------------------------------------------------------------------------------

    def login(self, user: str, password: str) -> list[Grant]:
        """The grants of a user who proved who they are with a password or a CI token."""
        if user == ANONYMOUS:
            raise BadCredentials("the anonymous account cannot log in")
        if self._keyless is not None and self._keyless.handles(user):
            return self._keyless.login(user, password)  # an ID token or a signed STS request (issue 17)
        ci_token = parse_ci_token(password)
        if ci_token is not None:
            record = self._accounts.get_token(user, ci_token.id)
            if record is None or record.expired(time.time()) or not same(record.secret_hash, ci_token.secret_hash):
                raise BadCredentials("unknown, revoked or expired token")
            account = self._accounts.get_user(user)
            if account is None:
                raise BadCredentials("unknown user")
            return account.grants
        cache_key = hashlib.sha256(f"{user}\0{password}".encode()).hexdigest()
        with self._lock:
            cached = self._verified.get(cache_key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        account = self._accounts.get_user(user)
        if account is None or account.password_hash is None or not check_password(password, account.password_hash):
            raise BadCredentials("wrong user name or password")
        with self._lock:
            if len(self._verified) > 1000:
                self._verified.clear()
            self._verified[cache_key] = (time.monotonic() + PASSWORD_CACHE_SECONDS, account.grants)
        return account.grants

    def anonymous_grants(self) -> list[Grant]:
        account = self._accounts.get_user(ANONYMOUS)
        return account.grants if account else []

    # ---- may they -------------------------------------------------------------------------

    def authorize(self, authorization: str | None, scope: Scope | None, realm_base: str) -> Principal:
        """The principal behind a registry request, allowed `scope`; otherwise the refusal."""
        if self.mode == "none":
            return EVERYONE
        if self.mode == "basic":
            return self._authorize_basic(authorization, scope, challenge.basic(self.settings.service))
        bearer = challenge.bearer(f"{realm_base}/token", self.settings.service, str(scope) if scope else None)
        if (authorization or "").partition(" ")[0].lower() == "basic":
            # Token mode takes Basic credentials too: behind API Gateway the challenge cannot
            # name a scope, and clients that take the scope from the challenge (oras-py,
            # python-dxf without `actions`) would fetch tokens that allow nothing.
            return self._authorize_basic(authorization, scope, bearer)
        return self._authorize_token(authorization, scope, realm_base)

    def _authorize_token(self, authorization: str | None, scope: Scope | None, realm_base: str) -> Principal:
        def refuse(error: str | None = None) -> RegistryError:
            header = challenge.bearer(f"{realm_base}/token", self.settings.service,
                                      str(scope) if scope else None, error)
            return RegistryError(Oci.UNAUTHORIZED, headers={"WWW-Authenticate": header})

        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise refuse()
        try:
            claims = self.issuer.verify(token.strip())
        except InvalidToken:
            raise refuse("invalid_token") from None
        principal = Principal(claims.subject, claims=claims)
        if scope is not None:
            allowed = self._allowed(principal, scope)
            missing = [a for a in scope.actions if a not in allowed]
            if missing and all(claims.asked_for(scope, a) for a in missing):
                raise RegistryError(Oci.DENIED, detail={"scope": str(scope)})
            if missing:
                raise refuse("insufficient_scope")
        return principal

    def _authorize_basic(self, authorization: str | None, scope: Scope | None, challenge_header: str) -> Principal:
        refusal = RegistryError(Oci.UNAUTHORIZED, headers={"WWW-Authenticate": challenge_header})
        if authorization:
            try:
                user, password = basic_credentials(authorization)
                principal = Principal(user, grants=self.login(user, password))
            except BadCredentials:
                raise refusal from None
        else:
            principal = Principal("", grants=self.anonymous_grants())
            if scope is None and not principal.grants:
                raise refusal
        if scope is not None and len(self._allowed(principal, scope)) < len(scope.actions):
            raise refusal if not principal.name else RegistryError(Oci.DENIED, detail={"scope": str(scope)})
        return principal

    @staticmethod
    def _allowed(principal: Principal, scope: Scope) -> tuple[str, ...]:
        # The catalog is for known users only: anonymous pull never lists repositories.
        if scope.type == "registry" and not principal.name:
            return ()
        return principal.allows(scope)

    # ---- tokens ---------------------------------------------------------------------------

    def grant_scopes(self, subject: str, grants: list[Grant], requested: list[Scope]) -> list[Scope]:
        """What a token for `subject` may carry of the scopes it asked for. Asked for none, it
        carries every grant, as repository patterns: behind API Gateway the challenge names no
        scope, and clients that ask for what it names (oras-py, python-dxf) must still get in."""
        if not requested:
            return [Scope("repository", g.pattern, tuple(a for a in ACTIONS if a in g.actions)) for g in grants]
        principal = Principal(subject, grants=grants)
        result = []
        for scope in requested:
            actions = self._allowed(principal, scope)
            if actions:
                result.append(Scope(scope.type, scope.name, actions))
        return result

    def readable(self, principal: Principal, repositories: list[str]) -> list[str]:
        """The repositories a principal may see in the catalog."""
        if self.mode == "none":
            return repositories
        grants = principal.grants
        if grants is None:  # a registry token names no repositories for the catalog: the account does
            account = self._accounts.get_user(principal.name) if principal.name else None
            grants = account.grants if account else []
        return [r for r in repositories if may_read(grants, r)]
