"""`/token`: the Docker registry token endpoint (GET with Basic credentials or none) and its
OAuth2 form (POST, grant_type password or refresh_token) that containerd and BuildKit use."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qs

from chalice import Response

from chalicelib.api.request import RegistryRequest
from chalicelib.api.responses import json_body
from chalicelib.auth.authenticator import BadCredentials, Login, basic_credentials
from chalicelib.auth.permissions import Scope, parse_scope
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


def _check_service(reg: Registry, service: str | None) -> None:
    if reg.auth.mode != "token":
        raise RegistryError(Oci.UNSUPPORTED, "this registry does not use token authentication")
    if service and service != reg.settings.service:
        raise RegistryError(Oci.DENIED, f"tokens here are for service {reg.settings.service!r}")


def _issue(reg: Registry, login: Login | None, requested: list[Scope], refresh_from: int | None) -> Response:
    """A token for `login` (None: anonymous) carrying what it may of `requested`; asked for
    no scope, it carries the account's grants: behind API Gateway the challenge names no
    scope, and clients that ask for what it names (oras-py, python-dxf) must still get in.
    `refresh_from`: the time of the login a refresh token is to stand for."""
    subject, grants = (login.user, login.grants) if login else ("", reg.auth.anonymous_grants())
    token, lifetime = reg.auth.issuer.access_token(
        subject, reg.auth.grant_scopes(subject, grants, requested), grants=None if requested else grants,
        not_after=login.not_after if login else None, uid=login.uid if login else "")
    body: dict[str, object] = {
        "token": token,
        "access_token": token,
        "expires_in": lifetime,
        "issued_at": datetime.fromtimestamp(time.time(), UTC).isoformat().replace("+00:00", "Z"),
    }
    if refresh_from is not None and login is not None and login.uid:  # keyless logins have no account
        body["refresh_token"] = reg.auth.issuer.refresh_token(subject, login.binding(refresh_from))
    return json_body(body, headers=NO_STORE)


def _login(reg: Registry, req: RegistryRequest, user: str, password: str) -> Login:
    try:
        return reg.auth.login(user, password, req.source)
    except BadCredentials:
        raise _refused("wrong credentials") from None


def get(req: RegistryRequest, reg: Registry) -> Response:
    _check_service(reg, req.arg("service"))
    authorization = req.header("authorization")
    login = None
    if authorization:
        try:
            user, password = basic_credentials(authorization)
        except BadCredentials:
            raise _refused("malformed credentials") from None
        login = _login(reg, req, user, password)
    refresh = int(time.time()) if req.arg("offline_token") == "true" else None
    return _issue(reg, login, _scopes(req.query.get("scope", [])), refresh)


def post(req: RegistryRequest, reg: Registry) -> Response:
    form = {k: v[-1] for k, v in parse_qs(req.body.decode("utf-8", errors="replace")).items()}
    grant_type = form.get("grant_type")
    if grant_type not in ("password", "refresh_token"):
        raise RegistryError(Oci.UNSUPPORTED, "grant_type must be password or refresh_token")
    _check_service(reg, form.get("service"))
    scopes = _scopes([form.get("scope", "")])
    if grant_type == "password":
        login = _login(reg, req, form.get("username", ""), form.get("password", ""))
        refresh = int(time.time()) if form.get("access_type") == "offline" else None
        return _issue(reg, login, scopes, refresh)
    try:
        login, auth_time = reg.auth.refreshed(form.get("refresh_token", ""))
    except BadCredentials:
        raise _refused("invalid refresh token") from None
    # The new refresh token stands for the same login: refreshing never extends its life.
    return _issue(reg, login, scopes, auth_time)
