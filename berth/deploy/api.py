"""What the REST API needs that Chalice cannot say, as a CloudFormation fragment for
`chalice package --merge-template`:

- every request body is binary (`*/*`), so API Gateway hands Lambda every body base64-encoded,
  byte for byte, whatever its Content-Type (python-dxf sends blobs with none; a text body
  would reach Lambda re-encoded as UTF-8). Chalice's own list stays narrow: it would refuse
  any response to a request without a matching Accept header if it saw `*/*`;
- with auth on, the gateway responses that carry the `WWW-Authenticate` challenge
  (chalicelib/auth/gateway.py explains why), built from the same answers the local mode
  serves, so what is tested locally is what is deployed.

    python -m berth.deploy.api > build/api.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from chalicelib.auth.gateway import gateway_answers
from chalicelib.settings import Settings

# The REST API's logical id in the template `chalice package` writes.
REST_API = "RestAPI"
# API Gateway's binaryMediaTypes; the local mode's API Gateway stand-in uses the same.
BINARY_MEDIA_TYPES = ["*/*"]


def _quoted(value: str) -> str:
    # Static values of gateway response parameters are single-quoted literals.
    return "'" + value.replace("'", "") + "'"


def template(settings: Settings) -> dict[str, Any]:
    api = {REST_API: {"Properties": {"DefinitionBody": {"x-amazon-apigateway-binary-media-types": BINARY_MEDIA_TYPES}}}}
    if settings.auth_mode == "none":
        return {"Resources": api}
    if not settings.public_url:
        raise SystemExit("BERTH_PUBLIC_URL is required with auth on: the challenge names the token realm")
    resources: dict[str, Any] = dict(api)
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
