"""The API Gateway authorizer (a REQUEST authorizer: it is told the caller's address as well as
the credentials): the registry's own access check, made on each request before
API Gateway lets it through, so that every refusal a client can see is a gateway response
carrying the challenge (chalicelib/auth/gateway.py says why the function cannot send one).

Its answer is never cached (the authorizer's TTL is 0): each request is decided exactly, as
the function decides it, by the same code, so a password change, a removed user or a revoked
grant holds on the next request, and the policy allows exactly the one method ARN asked for,
whatever the number of grants (a Lambda authorizer's result is limited to 8 KB). Outcomes:

- credentials missing, wrong or expired: "Unauthorized", the UNAUTHORIZED gateway response;
- valid credentials without the access asked for: a Deny, the ACCESS_DENIED response;
- throttled failed logins: let through, marked `throttled`, for the function to answer 429
  with Retry-After (a gateway response cannot say when to retry) without a check of its own;
- anything else (an unknown path, an invalid name): let through, for the function's error.
"""

from __future__ import annotations

from typing import Any

from chalice.app import AuthRequest

from chalicelib.api.dispatch import required_scope, route_request
from chalicelib.auth.authenticator import Authenticator
from chalicelib.auth.gateway import Unauthorized
from chalicelib.errors import Oci, RegistryError

_DENIALS = (Oci.DENIED, Oci.INSUFFICIENT_SCOPE)
POLICY_RESOURCE_LIMIT = 512  # characters of a policy statement's resource


def request_of(method_arn: str) -> tuple[str, str]:
    """(method, path) of `arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path>`."""
    resource = method_arn.split(":", 5)[-1]
    parts = resource.split("/", 3)
    if len(parts) < 3:
        raise Unauthorized
    return parts[2], "/" + (parts[3] if len(parts) > 3 else "")


def _resource(method_arn: str) -> str:
    """The method ARN, or where it is longer than a policy's resource may be (512 characters),
    every path of its method: safe, as the answer is never cached and so covers this request
    only."""
    if len(method_arn) <= POLICY_RESOURCE_LIMIT:
        return method_arn
    head, _, resource = method_arn.rpartition(":")
    return f"{head}:{'/'.join(resource.split('/', 3)[:3])}/*"


def _policy(principal: str, effect: str, method_arn: str, throttled: int = 0) -> dict[str, Any]:
    context: dict[str, Any] = {"principal": principal}
    if throttled:
        context["throttled"] = throttled  # the function answers 429 with this Retry-After
    return {
        "principalId": principal or "anonymous",
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": effect, "Resource": _resource(method_arn)}]},
        "context": context,
    }


class GatewayRequest(AuthRequest):
    """What a REQUEST authorizer is told: Chalice's AuthRequest (whose own reading expects a
    TOKEN authorizer's event), with the caller's address, which a TOKEN authorizer never sees
    and the login throttle needs."""

    def __init__(self, event: dict[str, Any]) -> None:
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        super().__init__(str(event.get("type", "")), headers.get("authorization", ""), str(event.get("methodArn", "")))
        self.source = str(((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp") or "")


def policy(auth: Authenticator, authorization: str, method_arn: str, source: str = "") -> dict[str, Any]:
    method, path = request_of(method_arn)
    try:
        principal = auth.authenticate(authorization, "", source)
    except RegistryError as error:
        if error.kind is Oci.TOOMANYREQUESTS:
            return _policy("", "Allow", method_arn, throttled=int(error.headers.get("Retry-After", "1")))
        raise Unauthorized from None
    try:
        route, params = route_request(method, path)
        auth.permit(principal, required_scope(route, params), "")
    except RegistryError as error:
        if error.kind in _DENIALS:
            return _policy(principal.name, "Deny", method_arn)
        if error.kind is Oci.UNAUTHORIZED:
            raise Unauthorized from None
    return _policy(principal.name, "Allow", method_arn)
