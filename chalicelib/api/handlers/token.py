"""`/token`: the Docker registry token endpoint (GET with Basic credentials or none) and its
OAuth2 form (POST, grant_type password or refresh_token) that containerd and BuildKit use."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qs

from chalice import Response

from chalicelib.api.request import RegistryRequest
from chalicelib.api.responses import json_body
from chalicelib.auth.authenticator import BadCredentials, basic_credentials
from chalicelib.auth.keyless import KeylessGrants
from chalicelib.auth.permissions import Grant, Scope, parse_scope
from chalicelib.auth.tokens import InvalidToken
from chalicelib.errors import Oci, RegistryError
from chalicelib.registry import Registry

NO_STORE = {"Cache-Control": "no-store"}


def _refused(message: str) -> RegistryError:
    # Deliberately vague: which of user, password or token was wrong is not the caller's business.
    return RegistryError(Oci.UNAUTHORIZED, message)


def _scopes(values: list[str]) -> list[Scope]:
    """Scopes from `scope` parameters (repeated, or space-separated in the OAuth2 form)."""
    parsed = [parse_scope(part) for value in values for part in value.split(" ") if part]
    return [s for s in parsed if s is not None]


def _issue(reg: Registry, subject: str, grants: list[Grant], requested: list[Scope], service: str | None,
           refresh: bool) -> Response:
    if reg.auth.mode != "token":
        raise RegistryError(Oci.UNSUPPORTED, "this registry does not use token authentication")
    if service and service != reg.settings.service:
        raise RegistryError(Oci.DENIED, f"tokens here are for service {reg.settings.service!r}")
    ttl = reg.auth.issuer.ttl_seconds
    if isinstance(grants, KeylessGrants):  # no longer than the ID token; no account to refresh against
        subject, ttl, refresh = grants.subject, grants.ttl(ttl, time.time()), False
    token = reg.auth.issuer.access_token(subject, reg.auth.grant_scopes(subject, grants, requested), requested, ttl)
    body: dict[str, object] = {
        "token": token,
        "access_token": token,
        "expires_in": ttl,
        "issued_at": datetime.fromtimestamp(time.time(), UTC).isoformat().replace("+00:00", "Z"),
    }
    if refresh and subject:
        body["refresh_token"] = reg.auth.issuer.refresh_token(subject)
    return json_body(body, headers=NO_STORE)


def _login(reg: Registry, user: str, password: str) -> list[Grant]:
    try:
        return reg.auth.login(user, password)
    except BadCredentials:
        raise _refused("wrong credentials") from None


def get(req: RegistryRequest, reg: Registry) -> Response:
    authorization = req.header("authorization")
    if authorization:
        try:
            user, password = basic_credentials(authorization)
        except BadCredentials:
            raise _refused("malformed credentials") from None
        grants = _login(reg, user, password)
    else:
        user, grants = "", reg.auth.anonymous_grants()
    return _issue(reg, user, grants, _scopes(req.query.get("scope", [])), req.arg("service"),
                  refresh=req.arg("offline_token") == "true")


def post(req: RegistryRequest, reg: Registry) -> Response:
    form = {k: v[-1] for k, v in parse_qs(req.body.decode("utf-8", errors="replace")).items()}
    grant_type = form.get("grant_type")
    scopes = _scopes([form.get("scope", "")])
    if grant_type == "password":
        user = form.get("username", "")
        grants = _login(reg, user, form.get("password", ""))
        return _issue(reg, user, grants, scopes, form.get("service"), refresh=form.get("access_type") == "offline")
    if grant_type == "refresh_token":
        try:
            user = reg.auth.issuer.verify(form.get("refresh_token", ""), kind="refresh").subject
        except InvalidToken:
            raise _refused("invalid refresh token") from None
        account = reg.accounts.get_user(user)
        if account is None:
            raise _refused("invalid refresh token")
        return _issue(reg, user, account.grants, scopes, form.get("service"), refresh=True)
    raise RegistryError(Oci.UNSUPPORTED, "grant_type must be password or refresh_token")
