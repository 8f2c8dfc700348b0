"""The API Gateway side of auth, deployed and emulated by the local mode.

API Gateway REST APIs rename `WWW-Authenticate` on Lambda responses, so a Lambda cannot send
the challenge clients need. A TOKEN authorizer runs first: a request without credentials
never reaches it, and API Gateway answers with the UNAUTHORIZED gateway response, which does
carry the header. With credentials, the authorizer returns a policy for everything they may
reach (cached by API Gateway per credential); a request outside it gets ACCESS_DENIED. The
registry Lambda still checks every request exactly; the gateway's check is coarser (it
cannot tell `team/app` from `team/app/manifests/x` in an ARN), never looser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib.auth import challenge
from chalicelib.auth.authenticator import Authenticator, BadCredentials, basic_credentials
from chalicelib.auth.permissions import DELETE, PULL, PUSH, Grant
from chalicelib.auth.tokens import InvalidToken
from chalicelib.settings import Settings

# What each action opens, as (methods, path under the repository).
_ROUTES = {
    PULL: (("GET", "HEAD"), ("manifests/*", "blobs/*", "tags/list", "referrers/*")),
    PUSH: (("POST", "PUT", "PATCH", "GET", "DELETE"), ("blobs/uploads", "blobs/uploads/*", "manifests/*")),
    DELETE: (("DELETE",), ("manifests/*", "blobs/*")),
}


class Unauthorized(Exception):
    """Raised with this exact message, API Gateway answers with the UNAUTHORIZED response."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def _arn_prefix(method_arn: str) -> str:
    # arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path>
    head, _, resource = method_arn.partition(":execute-api:")
    region_account_api = resource.split("/", 2)[:2]
    return f"{head}:execute-api:{'/'.join(region_account_api)}"


def _resources(prefix: str, repo_pattern: str, actions: frozenset[str] | tuple[str, ...]) -> list[str]:
    # ARN wildcards are `*` only; `?` in a grant widens to `*` (the Lambda's check is exact).
    repo = repo_pattern.replace("?", "*")
    arns = []
    for action in actions:
        methods, paths = _ROUTES.get(action, ((), ()))
        arns += [f"{prefix}/{method}/v2/{repo}/{path}" for method in methods for path in paths]
    return arns


def policy(auth: Authenticator, authorization: str, method_arn: str) -> dict[str, Any]:
    """The authorizer's answer: an IAM policy over the API for these credentials."""
    prefix = _arn_prefix(method_arn)
    resources = [f"{prefix}/GET/v2", f"{prefix}/HEAD/v2", f"{prefix}/GET/v2/", f"{prefix}/HEAD/v2/"]
    scheme, _, value = authorization.partition(" ")
    try:
        if auth.mode == "token" and scheme.lower() == "bearer":  # Basic is taken in both modes
            claims = auth.issuer.verify(value.strip())
            principal = claims.subject
            for (kind, name), actions in claims.access.items():
                if kind == "registry" and name == "catalog":
                    resources += [f"{prefix}/GET/v2/_catalog", f"{prefix}/POST/v2/_berth/doctor"]
                elif kind == "repository":
                    resources += _resources(prefix, name, actions)
        elif scheme.lower() == "basic":
            principal, password = basic_credentials(authorization)
            grants: list[Grant] = auth.login(principal, password)
            for grant in grants:
                resources += _resources(prefix, grant.pattern, grant.actions)
            resources += [f"{prefix}/GET/v2/_catalog", f"{prefix}/POST/v2/_berth/doctor"]
        else:
            raise Unauthorized
    except (InvalidToken, BadCredentials):
        raise Unauthorized from None
    return {
        "principalId": principal or "anonymous",
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": sorted(set(resources))}]},
        "context": {"principal": principal},
    }


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    def body_text(self) -> str:
        return json.dumps(self.body)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message}]}


def gateway_answers(settings: Settings, realm_base: str) -> dict[str, GatewayAnswer]:
    """API Gateway's own answers, by gateway response type. Token clients work out the scope
    themselves, so the challenge names none; denied access is a 401 there too, so that a
    client holding a token for other repositories fetches one for this."""
    if settings.auth_mode == "token":
        header = challenge.bearer(f"{realm_base}/token", settings.service)
        denied = GatewayAnswer(401, {"WWW-Authenticate": header}, _error("UNAUTHORIZED", "authentication required"))
    else:
        header = challenge.basic(settings.service)
        denied = GatewayAnswer(403, {}, _error("DENIED", "requested access to the resource is denied"))
    return {
        "UNAUTHORIZED": GatewayAnswer(401, {"WWW-Authenticate": header},
                                      _error("UNAUTHORIZED", "authentication required")),
        "ACCESS_DENIED": denied,
        "AUTHORIZER_FAILURE": GatewayAnswer(500, {}, _error("UNKNOWN", "authorizer failed")),
    }
