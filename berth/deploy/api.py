"""What the REST API needs that Chalice cannot say, as a CloudFormation fragment for
`chalice package --merge-template`:

- every request body is binary (`*/*`), so API Gateway hands Lambda every body base64-encoded,
  byte for byte, whatever its Content-Type (python-dxf sends blobs with none; a text body
  would reach Lambda re-encoded as UTF-8). Chalice's own list stays narrow: it would refuse
  any response to a request without a matching Accept header if it saw `*/*`;
- with auth on, the authorizer as a REQUEST authorizer (so it knows the caller's address), and
  the gateway responses that carry the `WWW-Authenticate` challenge
  (chalicelib/auth/gateway.py explains why), inside the API's definition (`gateway_responses`
  says why), built from the same answers the local mode serves, so what is tested locally is
  what is deployed;
- with a custom domain, the domain mapped at the root: clients ask for `/v2/...` at the root
  of the host, and the execute-api URL puts the stage name first (`/api/v2/...`).

    python -m berth.deploy.api [--domain-name D --certificate-arn A [--hosted-zone-id Z]] > build/api.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from chalicelib.auth.gateway import gateway_answers
from chalicelib.settings import Settings

# The REST API's logical id in the template `chalice package` writes.
REST_API = "RestAPI"
# The authorizer (app.py's `credentials`), made a REQUEST authorizer over Chalice's TOKEN one:
# it is then told the caller's address, which the login throttle needs (docs/auth.md). A
# request without the identity source (Authorization) is refused before it is invoked.
AUTHORIZER = "credentials"
REQUEST_AUTHORIZER = {"type": "request", "identitySource": "method.request.header.Authorization"}
# API Gateway's binaryMediaTypes; the local mode's API Gateway stand-in uses the same.
BINARY_MEDIA_TYPES = ["*/*"]


def _quoted(value: str) -> str:
    # Static values of gateway response parameters are single-quoted literals.
    return "'" + value.replace("'", "") + "'"


@dataclass(frozen=True)
class CustomDomain:
    name: str  # registry.example.com
    certificate_arn: str  # ACM, in the API's region (the endpoint is regional)
    hosted_zone_id: str | None = None  # Route 53: given, the alias record is made too

    def sam(self) -> dict[str, Any]:
        """SAM's `Domain` of the API: the domain name, and a base path mapping of the root
        that depends on the stage (Chalice's own custom domain support misses that dependency
        and can fail with "Invalid stage identifier", aws/chalice#1735)."""
        domain: dict[str, Any] = {"DomainName": self.name, "CertificateArn": self.certificate_arn,
                                  "EndpointConfiguration": "REGIONAL", "SecurityPolicy": "TLS_1_2"}
        if self.hosted_zone_id:
            domain["Route53"] = {"HostedZoneId": self.hosted_zone_id}
        return domain


def template(settings: Settings, domain: CustomDomain | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"x-amazon-apigateway-binary-media-types": BINARY_MEDIA_TYPES}
    properties: dict[str, Any] = {"DefinitionBody": body}
    if domain is not None:
        properties["Domain"] = domain.sam()
    if settings.auth_mode != "none":
        body["x-amazon-apigateway-gateway-responses"] = gateway_responses(settings)
        body["securityDefinitions"] = {AUTHORIZER: {"x-amazon-apigateway-authorizer": REQUEST_AUTHORIZER}}
    return {"Resources": {REST_API: {"Properties": properties}}}


def gateway_responses(settings: Settings) -> dict[str, Any]:
    """In the API's definition, not as AWS::ApiGateway::GatewayResponse resources: a change to
    the definition re-imports the whole API (overwrite mode), which would silently drop
    responses defined beside it, and with them the challenge (cfn-lint W3660)."""
    if not settings.public_url:
        raise SystemExit("BERTH_PUBLIC_URL is required with auth on: the challenge names the token realm")
    return {
        kind: {
            "statusCode": str(answer.status),
            "responseParameters": {f"gatewayresponse.header.{name}": _quoted(value)
                                   for name, value in answer.headers.items()},
            "responseTemplates": {"application/json": answer.body_text()},
        }
        for kind, answer in gateway_answers(settings, settings.public_url.rstrip("/")).items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m berth.deploy.api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--domain-name")
    parser.add_argument("--certificate-arn")
    parser.add_argument("--hosted-zone-id")
    args = parser.parse_args()
    if bool(args.domain_name) != bool(args.certificate_arn):
        parser.error("--domain-name and --certificate-arn go together")
    domain = CustomDomain(args.domain_name, args.certificate_arn, args.hosted_zone_id) if args.domain_name else None
    json.dump(template(Settings.from_env(), domain), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
