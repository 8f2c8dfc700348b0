"""Trust rules: which outside identities get which grants, without a stored secret. Pure logic.

An OIDC rule names an issuer, the audience its ID tokens must carry, and conditions on their
claims (`repository` = `org/app`, `ref` = `refs/heads/main`); an AWS rule names an IAM
principal (a role, a user, an assumed-role session, or a whole account). Every rule that
matches an identity contributes its grants. Conditions and principals are patterns written
by an administrator (`*` and `?` as in grants); what they are matched against is always a
concrete value from a signed token or from STS, never text the caller chose.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from chalicelib.auth.permissions import Grant

OIDC, AWS = "oidc", "aws"
KINDS = (OIDC, AWS)

_ACCOUNT = re.compile(r"^\d{12}\Z")
_PARTITION = r"aws|aws-cn|aws-us-gov"
# Where each kind of IAM principal lives: iam for roles, users and the root; sts for sessions.
_PRINCIPAL_SERVICE = {"role": "iam", "user": "iam", "root": "iam", "assumed-role": "sts", "federated-user": "sts"}
_RULE_ARN = re.compile(rf"^arn:({_PARTITION}):(iam|sts)::(\d{{12}}):(root|[a-z-]+/.+)\Z")
_CALLER_ARN = re.compile(rf"^arn:({_PARTITION}):(iam|sts)::(\d{{12}}):(root|[a-z-]+/[\w+=,.@/-]+)\Z")


class Refused(Exception):
    """Why an outside identity was turned away: for logs, never for the caller."""


def json_object(base64url: str, refusal: type[Refused] = Refused) -> dict[str, Any]:
    """A JSON object in unpadded base64url, as JWT segments and signed requests carry it;
    otherwise `refusal`."""
    try:
        value = json.loads(base64.urlsafe_b64decode(base64url + "=" * (-len(base64url) % 4)))
    except (binascii.Error, ValueError):
        raise refusal("malformed base64url JSON") from None
    if not isinstance(value, dict):
        raise refusal("not a JSON object")
    return value


@dataclass(frozen=True)
class TrustRule:
    id: str
    kind: str  # OIDC or AWS
    grants: list[Grant]
    issuer: str = ""  # OIDC: the `iss` of its tokens, exactly
    audience: str = ""  # OIDC: an `aud` its tokens must carry
    conditions: Mapping[str, str] = field(default_factory=dict)  # OIDC: claim -> pattern, all must hold
    principal: str = ""  # AWS: an ARN pattern, or a 12-digit account id
    description: str = ""

    def describe(self) -> str:
        if self.kind == OIDC:
            conditions = " ".join(f"{k}={v}" for k, v in sorted(self.conditions.items()))
            return f"oidc {self.issuer} aud={self.audience} {conditions}"
        return f"aws {self.principal}"


# ---- checking what an administrator writes ---------------------------------------------------

def issuer_allowed(url: str, http_loopback: bool) -> bool:
    """HTTPS only; plain HTTP to this machine only where explicitly allowed (tests)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname or parts.username or parts.password:
        return False
    if parts.scheme == "https":
        return True
    return http_loopback and parts.scheme == "http" and parts.hostname in ("127.0.0.1", "::1", "localhost")


def check_oidc_rule(issuer: str, audience: str, conditions: Mapping[str, str]) -> None:
    """Raises ValueError, saying why, for a rule that would be unsafe or could never match."""
    if not issuer_allowed(issuer, http_loopback=True) or urlsplit(issuer).query or urlsplit(issuer).fragment:
        raise ValueError(f"issuer must be an https URL without query or fragment, not {issuer!r}")
    if not audience:
        raise ValueError("an audience is required: the value the CI job asks its ID token to carry")
    if not conditions:
        # Without one, every job of every customer of a shared issuer (GitHub, GitLab) would match.
        raise ValueError("at least one claim condition is required, e.g. repository=org/app")
    for name, pattern in conditions.items():
        if not name or not pattern or pattern.strip("*?") == "":
            raise ValueError(f"condition {name}={pattern} matches anything: name a concrete value")


def check_principal(principal: str) -> None:
    """An account id, or an IAM ARN pattern whose partition, service and account are literal."""
    if _ACCOUNT.match(principal):
        return
    match = _RULE_ARN.match(principal)
    if match is None:
        raise ValueError(f"principal must be a 12-digit account id or an IAM ARN "
                         f"(arn:aws:iam::123456789012:role/NAME), not {principal!r}")
    _, service, _, resource = match.groups()
    kind = resource.split("/", 1)[0]
    if _PRINCIPAL_SERVICE.get(kind) != service:
        raise ValueError(f"{kind!r} principals are arn:...:{_PRINCIPAL_SERVICE.get(kind, 'iam|sts')}::..., "
                         f"not {service}")
    if kind == "role" and "/" in resource[len("role/"):]:
        # STS names a session's role without its path: such a pattern could never match.
        raise ValueError("name the role without its path: arn:aws:iam::ACCOUNT:role/NAME")


# ---- matching ------------------------------------------------------------------------------

def _claim_text(value: Any) -> str | None:
    """A claim as the text conditions compare; None for objects and lists, which never match."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    return None


def audiences_of(claims: Mapping[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    values = aud if isinstance(aud, list) else [aud]
    return tuple(v for v in values if isinstance(v, str))


def oidc_rule_matches(rule: TrustRule, issuer: str, claims: Mapping[str, Any]) -> bool:
    if rule.kind != OIDC or rule.issuer != issuer or rule.audience not in audiences_of(claims):
        return False
    for name, pattern in rule.conditions.items():
        text = _claim_text(claims.get(name))
        if text is None or not fnmatchcase(text, pattern):
            return False
    return True


def caller_forms(arn: str) -> tuple[str, ...] | None:
    """The ARNs a caller answers to: its own, and for an assumed-role session, its role's.
    None when `arn` is not an IAM principal's ARN."""
    match = _CALLER_ARN.match(arn)
    if match is None:
        return None
    partition, _, account, resource = match.groups()
    if resource.startswith("assumed-role/"):
        role = resource.split("/")[1]
        return arn, f"arn:{partition}:iam::{account}:role/{role}"
    return (arn,)


def aws_rule_matches(rule: TrustRule, arn: str) -> bool:
    forms = caller_forms(arn)
    if rule.kind != AWS or forms is None:
        return False
    if _ACCOUNT.match(rule.principal):
        return arn.split(":")[4] == rule.principal
    return any(fnmatchcase(form, rule.principal) for form in forms)


def grants_of(rules: Iterable[TrustRule], matches: Callable[[TrustRule], bool]) -> list[Grant] | None:
    """The grants of every rule that matches, merged; None when none does."""
    merged: dict[str, set[str]] = {}
    matched = False
    for rule in rules:
        if matches(rule):
            matched = True
            for grant in rule.grants:
                merged.setdefault(grant.pattern, set()).update(grant.actions)
    if not matched:
        return None
    return [Grant(pattern, frozenset(actions)) for pattern, actions in sorted(merged.items())]
