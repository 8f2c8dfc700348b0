"""The API in the packaged template: one greedy route (and one for the web pages, never behind
the authorizer), every body binary, the auth challenge path exactly when auth is on, and the
custom domain mapped at the root."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from berth.deploy.api import template
from chalicelib.settings import Settings
from tests.deploy.conftest import STORAGE, Packaged

PUBLIC_URL = "https://registry.example.com"


def test_token_mode_template_has_the_challenge_path(packaged: Packaged) -> None:
    body = packaged.resources["RestAPI"]["Properties"]["DefinitionBody"]
    paths = body["paths"]
    authorizer = body["securityDefinitions"]["credentials"]
    # A REQUEST authorizer, told the caller's address (the login throttle's), refused without credentials.
    assert authorizer["x-amazon-apigateway-authorizer"]["type"] == "request"
    assert authorizer["x-amazon-apigateway-authorizer"]["identitySource"] == "method.request.header.Authorization"
    assert authorizer["x-amazon-apigateway-authorizer"]["authorizerUri"]  # Chalice's function, kept
    assert authorizer["name"] == "Authorization"
    # Never cached: account changes hold on the next request, and every refusal carries the challenge.
    assert authorizer["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"] == 0
    for path in ("/v2", "/v2/{proxy+}"):
        for method, operation in paths[path].items():
            assert operation["security"] == [{"credentials": []}], (path, method)
    for path in ("/token", "/ui", "/ui/{proxy+}"):  # the pages log people in themselves
        assert all("security" not in op for op in paths[path].values()), path
    responses = body["x-amazon-apigateway-gateway-responses"]
    challenge = "'Bearer realm=\"https://registry.example.com/token\",service=\"berth\"'"
    final = challenge[:-1] + ",error=\"insufficient_scope\"'"  # docker and containerd then stop at once
    for kind, header, code in (("UNAUTHORIZED", challenge, "UNAUTHORIZED"), ("ACCESS_DENIED", final, "DENIED")):
        assert responses[kind]["statusCode"] == "401"
        assert responses[kind]["responseParameters"]["gatewayresponse.header.WWW-Authenticate"] == header
        assert json.loads(responses[kind]["responseTemplates"]["application/json"])["errors"][0]["code"] == code
    # Inside the definition only: resources beside it would be dropped by its next re-import.
    assert not packaged.of_type("AWS::ApiGateway::GatewayResponse")


def test_cloudformation_gets_the_challenge_inside_the_api(translated: dict[str, Any]) -> None:
    """After the SAM transform the responses are still part of the API's body, so every
    re-import of the definition (any change to it) brings them along."""
    body = translated["Resources"]["RestAPI"]["Properties"]["Body"]
    assert set(body["x-amazon-apigateway-gateway-responses"]) >= {"UNAUTHORIZED", "ACCESS_DENIED"}
    assert body["x-amazon-apigateway-binary-media-types"] == ["*/*"]


def test_one_greedy_route_and_every_body_binary(packaged: Packaged) -> None:
    body = packaged.resources["RestAPI"]["Properties"]["DefinitionBody"]
    assert set(body["paths"]) == {"/v2", "/v2/{proxy+}", "/token", "/ui", "/ui/{proxy+}"}
    assert {"get", "head", "put", "post", "patch", "delete"} <= set(body["paths"]["/v2/{proxy+}"])
    assert set(body["paths"]["/ui/{proxy+}"]) == {"get", "head", "post"}
    assert body["x-amazon-apigateway-binary-media-types"] == ["*/*"]


def test_the_domain_is_mapped_at_the_root_after_the_stage_exists(translated: dict[str, Any]) -> None:
    resources = translated["Resources"]
    (domain,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::DomainName"]
    assert domain["DomainName"] == STORAGE.domain
    assert domain["RegionalCertificateArn"] == STORAGE.certificate_arn
    assert domain["SecurityPolicy"] == "TLS_1_2"
    (mapping,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::BasePathMapping"]
    assert "BasePath" not in mapping  # the root: clients ask for /v2/ at the top of the host
    stage = mapping["Stage"]["Ref"]  # a reference, so CloudFormation creates the stage first
    assert resources[stage]["Type"] == "AWS::ApiGateway::Stage"
    (records,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Route53::RecordSetGroup"]
    assert records["HostedZoneId"] == STORAGE.hosted_zone_id
    assert records["RecordSets"][0]["Name"] == STORAGE.domain


def test_without_auth_there_is_no_authorizer(packaging: Callable[[str], Packaged]) -> None:
    packaged = packaging("none")
    body = packaged.resources["RestAPI"]["Properties"]["DefinitionBody"]
    assert "securityDefinitions" not in body
    assert body["x-amazon-apigateway-binary-media-types"] == ["*/*"]
    assert "x-amazon-apigateway-gateway-responses" not in body


def test_basic_mode_denies_with_403_and_challenges_with_basic() -> None:
    settings = Settings("b", "t", "us-east-1", 60, auth_mode="basic", public_url=PUBLIC_URL)
    body = template(settings)["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    assert responses["ACCESS_DENIED"]["statusCode"] == "403"
    assert responses["UNAUTHORIZED"]["responseParameters"]["gatewayresponse.header.WWW-Authenticate"].startswith(
        "'Basic ")


def test_auth_without_a_public_url_is_refused() -> None:
    with pytest.raises(SystemExit):
        template(Settings("b", "t", "us-east-1", 60, auth_mode="token"))
