"""Who is looking at the pages, and what they may see and do.

With auth off everyone may do everything. Otherwise a visitor is whoever their session cookie
names, checked against the account on every request (chalicelib/ui/session.py says why), with
the account's grants as they are now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.auth.authenticator import EVERYONE, Principal
from chalicelib.auth.permissions import DELETE, PULL, Scope
from chalicelib.auth.secrets import parse_ci_token
from chalicelib.registry import Registry
from chalicelib.ui.session import (
    Session,
    SessionSigner,
    password_credential,
    session_key,
    token_credential,
)


@dataclass
class Visitor:
    principal: Principal
    session: Session | None  # None with auth off
    csrf: str  # what this visitor's forms carry
    cookies: list[str] = field(default_factory=list)  # Set-Cookie values the response must carry

    @property
    def name(self) -> str:
        return self.principal.name

    def may_pull(self, repo: str) -> bool:
        return self.principal.may_read(repo)

    def may_delete(self, repo: str) -> bool:
        return DELETE in self.principal.allows(Scope("repository", repo, (DELETE,)))

    @property
    def sees_everything(self) -> bool:
        """May pull every repository: with auth off, or with a grant of pull on `*`. Only they
        see storage totals, which count every repository."""
        grants = self.principal.grants
        if grants is None and self.principal.claims is None:
            return True
        return any(g.pattern.strip("*") == "" and PULL in g.actions for g in grants or [])


def signer(registry: Registry) -> SessionSigner:
    """Sessions are signed with a key derived from the registry's current signing key, so a
    key rotation also ends every web session."""
    return SessionSigner(session_key(registry.auth.keys().current.key))


def everyone(csrf: str) -> Visitor:
    return Visitor(EVERYONE, None, csrf)


def check_session(registry: Registry, session: Session, now: float) -> Principal | None:
    """The principal a session stands for, if the account still allows it: the user exists,
    the password is the one logged in with (or the CI token is still valid)."""
    accounts = registry.accounts
    user = accounts.get_user(session.user)
    if user is None:
        return None
    kind, _, value = session.credential.partition(":")
    if kind == "token":
        token = accounts.get_token(session.user, value)
        if token is None or token.expired(now):
            return None
    elif session.credential != password_credential(user.password_hash):
        return None
    return Principal(user.name, grants=user.grants)


def log_in(registry: Registry, user: str, password: str, source: str = "") -> str:
    """Check a password or CI token, as every other way in does (`Authenticator.login`), and
    return the credential a session records. Raises BadCredentials, or a RegistryError the
    authenticator answers with (a throttled login, say)."""
    ci_token = parse_ci_token(password)
    # Read before the check, so that a password changed in between ends the session at once.
    account = registry.accounts.get_user(user) if ci_token is None else None
    registry.auth.login(user, password, source)
    if ci_token is not None:
        return token_credential(ci_token.id)
    return password_credential(account.password_hash if account else None)
