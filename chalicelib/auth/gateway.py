"""API Gateway's own answers, deployed (berth/deploy/api.py writes them into the API) and
emulated by the local mode.

API Gateway REST APIs rename `WWW-Authenticate` on Lambda responses, so a Lambda cannot send
the challenge clients need. A TOKEN authorizer (chalicelib/api/authorizer.py) runs first on
every request; its refusals are API Gateway's gateway responses, which do carry the header.
Those responses are static: a challenge there can say `insufficient_scope`, but cannot name
the scope.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib.auth import challenge
from chalicelib.errors import Oci
from chalicelib.settings import Settings


class Unauthorized(Exception):
    """Raised with this exact message, API Gateway answers with the UNAUTHORIZED response."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    def body_text(self) -> str:
        return json.dumps(self.body)


# With a detail, docker keeps a DENIED error whole and takes it as final; a bare code with its
# default message it reads as a plain code, which it retries for about 50 s.
_DENIED_DETAIL = "these credentials may not do this"


def _error(kind: Oci, message: str | None = None, detail: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": kind.code, "message": message or kind.message}
    if detail:
        error["detail"] = detail
    return {"errors": [error]}


def gateway_answers(settings: Settings, realm_base: str) -> dict[str, GatewayAnswer]:
    """API Gateway's own answers, by gateway response type: UNAUTHORIZED when credentials are
    missing or wrong, ACCESS_DENIED when valid credentials do not reach what was asked for.
    In token mode the denial is a 401 saying `insufficient_scope`, which docker and containerd
    take as final; a plain 401 would have them fetch tokens and retry."""
    if settings.auth_mode == "token":
        realm = f"{realm_base}/token"
        header = challenge.bearer(realm, settings.service)
        denied = GatewayAnswer(Oci.INSUFFICIENT_SCOPE.status,
                               {"WWW-Authenticate": challenge.bearer(realm, settings.service,
                                                                     error="insufficient_scope")},
                               _error(Oci.INSUFFICIENT_SCOPE, detail=_DENIED_DETAIL))
    else:
        header = challenge.basic(settings.service)
        denied = GatewayAnswer(Oci.DENIED.status, {}, _error(Oci.DENIED, detail=_DENIED_DETAIL))
    failure = GatewayAnswer(500, {}, _error(Oci.UNKNOWN, "authorizer failed"))
    return {
        "UNAUTHORIZED": GatewayAnswer(401, {"WWW-Authenticate": header}, _error(Oci.UNAUTHORIZED)),
        "ACCESS_DENIED": denied,
        "AUTHORIZER_FAILURE": failure,
        "AUTHORIZER_CONFIGURATION_ERROR": failure,
    }
