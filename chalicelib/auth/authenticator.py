"""Authentication and authorization of registry requests, in the three modes:

- `none`: everyone may do everything (the local default);
- `basic`: each request carries a user's password or CI token (HTTP Basic);
- `token`: each request carries a registry token from `/token` (the Docker token flow).

Two questions, asked apart so that API Gateway's authorizer can tell its two refusals apart
(chalicelib/api/authorizer.py): who is asking (`authenticate`: a 401 with a challenge when
new credentials could help), and may they (`permit`: in token mode a 401 whose challenge says
`insufficient_scope`, which docker and containerd take as final; in Basic mode 403 `DENIED`
for a known user). Every password check reads the account, so a change to it holds on the
next request; passwords are checked in constant work whether or not the user exists, and
failed logins are throttled (chalicelib/auth/throttle.py).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from chalicelib.auth import challenge, throttle
from chalicelib.auth.keys import CachedRing
from chalicelib.auth.permissions import Grant, Scope, granted, may_read
from chalicelib.auth.secrets import check_password, parse_ci_token, same
from chalicelib.auth.tokens import Claims, InvalidToken, RefreshBinding, TokenIssuer
from chalicelib.errors import Oci, RegistryError
from chalicelib.naming import valid_name
from chalicelib.settings import Settings
from chalicelib.storage.accounts import ANONYMOUS, AccountStore, User
from chalicelib.storage.throttle import FailureCounters

if TYPE_CHECKING:
    from chalicelib.auth.keyless import KeylessLogin

_VERIFIED_LIMIT = 1000
# A bcrypt hash (cost 10, as BCRYPT_ROUNDS) of a random password nobody kept: a login for a
# name with no account is checked against it, so it costs what a wrong password costs.
_DECOY_HASH = "$2b$10$nEY02eiAtagyn4eISAGhAOroRzFM47ZXSwAl28uLECllBlCJ7veYS"


class BadCredentials(Exception):
    pass


@dataclass(frozen=True)
class Login:
    """Who proved themselves with a password or CI token, and with which credential."""

    user: str
    grants: list[Grant]
    uid: str
    credential: str  # "password:<generation>" or "ci:<token id>"
    not_after: int | None = None  # when the credential itself ends (an expiring CI token)

    def binding(self, auth_time: int) -> RefreshBinding:
        return RefreshBinding(self.uid, self.credential, auth_time)


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


class _Verified:
    """Passwords this container has checked, each against the hash it was checked with: a
    check is skipped only while the account still has that very hash, so a new password, a
    removed user or a re-created one is seen on the next request. Keys are keyed hashes,
    so a memory dump holds nothing a guess can be tested against offline."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._hashes: dict[bytes, str] = {}

    def _slot(self, user: str, password: str) -> bytes:
        message = json.dumps([user, password]).encode("utf-8", errors="surrogatepass")  # unambiguous pairs
        return hmac.digest(self._key, message, "sha256")

    def holds(self, user: str, password: str, stored_hash: str) -> bool:
        with self._lock:
            known = self._hashes.get(self._slot(user, password))
        return known is not None and same(known, stored_hash)

    def remember(self, user: str, password: str, stored_hash: str) -> None:
        with self._lock:
            if len(self._hashes) >= _VERIFIED_LIMIT:
                self._hashes.clear()
            self._hashes[self._slot(user, password)] = stored_hash


class Authenticator:
    def __init__(self, settings: Settings, accounts: AccountStore, keys: CachedRing,
                 failures: FailureCounters, keyless: KeylessLogin | None = None) -> None:
        self.settings = settings
        self._keyless = keyless
        self._accounts = accounts
        self.keys = keys
        self._failures = failures
        self._issuer: TokenIssuer | None = None
        self._verified = _Verified()

    @property
    def mode(self) -> str:
        return self.settings.auth_mode

    @property
    def issuer(self) -> TokenIssuer:
        if self._issuer is None:
            self._issuer = TokenIssuer(self.keys, self.settings.service, self.settings.token_ttl,
                                       self.settings.refresh_ttl)
        return self._issuer

    # ---- who ------------------------------------------------------------------------------

    def login(self, user: str, password: str, source: str = "") -> Login:
        """A user who proved who they are with a password, a CI token, or (users `oidc` and
        `aws`) an ID token or a signed STS request. Throttled: raises RegistryError
        TOOMANYREQUESTS while the name or the address has failed too often."""
        counters = throttle.counters(user, source)
        if self._keyless is not None and self._keyless.handles(user):
            # Counted per address only: every CI job shares the name, which one attacker's
            # failures must not lock. Each IAM attempt costs an STS call.
            with self._attempt([c for c in counters if c.limit is throttle.SOURCE_LIMIT]):
                proven = self._keyless.login(user, password)
            # No account behind it: no uid, so no refresh token; it lasts no longer than its proof.
            return Login(proven.subject, list(proven), "", user, proven.expires)
        ci_token = parse_ci_token(password)
        if ci_token is not None:
            # 256 random bits cannot be guessed: a CI token is checked even while its name is
            # throttled, and only a failure is counted.
            record = self._accounts.get_token(user, ci_token.id) if valid_name(user) else None
            if record is None or record.expired(time.time()) or not same(record.secret_hash, ci_token.secret_hash):
                self._failed(counters)
            account = self._accounts.get_user(user)
            if account is None:
                self._failed(counters)
            return Login(user, account.grants, account.uid, f"ci:{record.id}", record.expires)
        # A name no account can have is never looked up (nor made into an over-long key).
        account = self._accounts.get_user(user) if user != ANONYMOUS and valid_name(user) else None
        stored = account.password_hash if account is not None else None
        if account is not None and stored is not None and self._verified.holds(user, password, stored):
            return self._password_login(account)
        with self._attempt(counters):
            # A user who does not exist costs the same bcrypt check as a wrong password.
            if not check_password(password, stored or _DECOY_HASH) or account is None or stored is None:
                raise BadCredentials("wrong user name, password or token")
        self._verified.remember(user, password, stored)
        return self._password_login(account)

    @staticmethod
    def _password_login(account: User) -> Login:
        return Login(account.name, account.grants, account.uid, f"password:{account.generation}")

    def _failed(self, counters: list[throttle.Counter]) -> NoReturn:
        """Count a failure found without a reservation: 429 if a counter is at its limit."""
        with self._attempt(counters):
            raise BadCredentials("wrong user name, password or token")

    @contextmanager
    def _attempt(self, counters: list[throttle.Counter]) -> Iterator[None]:
        """Reserve one attempt on every counter before checking anything, so that guesses sent
        at once cannot all be checked: 429 once a counter is at its limit. A check that fails
        (BadCredentials) keeps its reservation as a failure; one that succeeds gives it back."""
        now = time.time()
        keys = [c.key(now) for c in counters]
        taken = self._failures.reserve(keys, [c.limit.failures for c in counters], throttle.expiry(now))
        if taken < len(counters):
            raise throttle.too_many(counters[taken].limit.window(now)[1])
        try:
            yield
        except BadCredentials:
            raise
        except BaseException:
            self._failures.release(keys)
            raise
        self._failures.release(keys)

    def refreshed(self, refresh_token: str) -> tuple[Login, int]:
        """The login a refresh token stands for, while its account and credential still do,
        and the time of that login."""
        try:
            claims = self.issuer.verify(refresh_token, kind="refresh")
        except InvalidToken:
            raise BadCredentials("invalid refresh token") from None
        account = self._accounts.get_user(claims.subject) if claims.subject != ANONYMOUS else None
        if account is None or not claims.uid or not same(account.uid, claims.uid):
            raise BadCredentials("the account is gone")
        kind, _, value = claims.credential.partition(":")
        if kind == "password" and value == str(account.generation) and account.password_hash is not None:
            return self._password_login(account), claims.auth_time
        if kind == "ci":
            record = self._accounts.get_token(account.name, value)
            if record is not None and not record.expired(time.time()):
                return Login(account.name, account.grants, account.uid, claims.credential,
                             record.expires), claims.auth_time
        raise BadCredentials("the credential behind the refresh token has changed")

    def anonymous_grants(self) -> list[Grant]:
        account = self._accounts.get_user(ANONYMOUS)
        return account.grants if account else []

    def authenticate(self, authorization: str | None, realm_base: str, source: str = "") -> Principal:
        """Who is asking; a 401 with the mode's challenge (or 429) when that cannot be told."""
        if self.mode == "none":
            return EVERYONE
        if self.mode == "basic" or (authorization or "").partition(" ")[0].lower() == "basic":
            # Token mode takes Basic credentials too: behind API Gateway the challenge cannot
            # name a scope, and clients that take the scope from it (oras-py, python-dxf
            # without `actions`) would fetch tokens that allow nothing.
            return self._basic_principal(authorization, realm_base, source)
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorized(realm_base)
        try:
            claims = self.issuer.verify(token.strip())
        except InvalidToken:
            raise self._unauthorized(realm_base, error="invalid_token") from None
        return Principal(claims.subject, claims=claims)

    def _basic_principal(self, authorization: str | None, realm_base: str, source: str) -> Principal:
        if not authorization:
            return Principal("", grants=self.anonymous_grants())
        try:
            user, password = basic_credentials(authorization)
            login = self.login(user, password, source)
            return Principal(login.user, grants=login.grants)
        except BadCredentials:
            raise self._unauthorized(realm_base) from None

    def _unauthorized(self, realm_base: str, error: str | None = None) -> RegistryError:
        if self.mode == "basic":
            header = challenge.basic(self.settings.service)
        else:
            header = challenge.bearer(f"{realm_base}/token", self.settings.service, None, error)
        return RegistryError(Oci.UNAUTHORIZED, headers={"WWW-Authenticate": header})

    # ---- may they -------------------------------------------------------------------------

    def permit(self, principal: Principal, scope: Scope | None, realm_base: str) -> None:
        """Refuse `principal` what `scope` asks for and it may not do (None: any valid caller)."""
        if self.mode == "none":
            return
        if scope is None:
            if principal.name or principal.claims is not None or principal.grants:
                return
            raise self._unauthorized(realm_base)  # no credentials, and nothing open to anonymous callers
        if len(self._allowed(principal, scope)) == len(scope.actions):
            return
        if self.mode == "token":  # whether the caller came with a token or with Basic credentials
            header = challenge.bearer(f"{realm_base}/token", self.settings.service, str(scope), "insufficient_scope")
            raise RegistryError(Oci.INSUFFICIENT_SCOPE, headers={"WWW-Authenticate": header},
                                detail={"scope": str(scope)})
        if not principal.name:
            raise self._unauthorized(realm_base)
        raise RegistryError(Oci.DENIED, detail={"scope": str(scope)})

    def authorize(self, authorization: str | None, scope: Scope | None, realm_base: str,
                  source: str = "") -> Principal:
        """The principal behind a registry request, allowed `scope`; otherwise the refusal."""
        principal = self.authenticate(authorization, realm_base, source)
        self.permit(principal, scope, realm_base)
        return principal

    @staticmethod
    def _allowed(principal: Principal, scope: Scope) -> tuple[str, ...]:
        # The catalog is for known users only: anonymous pull never lists repositories.
        if scope.type == "registry" and not principal.name:
            return ()
        return principal.allows(scope)

    # ---- tokens ---------------------------------------------------------------------------

    def grant_scopes(self, subject: str, grants: list[Grant], requested: list[Scope]) -> list[Scope]:
        """What a token for `subject` may carry of the scopes it asked for: each a concrete
        name (a name that is a pattern is granted nothing)."""
        principal = Principal(subject, grants=grants)
        result = []
        for scope in requested:
            actions = self._allowed(principal, scope)
            if actions:
                result.append(Scope(scope.type, scope.name, actions))
        return result

    def reader(self, principal: Principal) -> Callable[[str], bool]:
        """Which repositories a principal may see in the catalog."""
        if self.mode == "none":
            return lambda _: True
        grants = principal.grants
        if grants is None:  # a registry token names no repositories for the catalog: its account does
            account = self._accounts.get_user(principal.name) if valid_name(principal.name) else None
            same_account = account is not None and principal.claims is not None and account.uid == principal.claims.uid
            grants = account.grants if account is not None and same_account else []
        return lambda repo: may_read(grants, repo)
