"""The API's gateway responses as a CloudFormation fragment for `chalice package
--merge-template`: with auth on, they are how the `WWW-Authenticate` challenge reaches
clients (chalicelib/auth/gateway.py explains why). Built from the same answers the local
mode serves, so what is tested locally is what is deployed.

    python -m berth.deploy.gateway > build/gateway-responses.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from chalicelib.auth.gateway import gateway_answers
from chalicelib.settings import Settings

# The REST API's logical id in the template `chalice package` writes.
REST_API = "RestAPI"


def _quoted(value: str) -> str:
    # Static values of gateway response parameters are single-quoted literals.
    return "'" + value.replace("'", "") + "'"


def template(settings: Settings) -> dict[str, Any]:
    if settings.auth_mode == "none":
        return {"Resources": {}}
    if not settings.public_url:
        raise SystemExit("BERTH_PUBLIC_URL is required with auth on: the challenge names the token realm")
    resources = {}
    for kind, answer in gateway_answers(settings, settings.public_url.rstrip("/")).items():
        parameters = {f"gatewayresponse.header.{name}": _quoted(value) for name, value in answer.headers.items()}
        resources[f"GatewayResponse{kind.title().replace('_', '')}"] = {
            "Type": "AWS::ApiGateway::GatewayResponse",
            "Properties": {
                "RestApiId": {"Ref": REST_API},
                "ResponseType": kind,
                "StatusCode": str(answer.status),
                "ResponseParameters": parameters,
                "ResponseTemplates": {"application/json": answer.body_text()},
            },
        }
    return {"Resources": resources}


def main() -> None:
    json.dump(template(Settings.from_env()), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
