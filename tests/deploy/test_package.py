"""`chalice package` with our merge template: the deployed API carries the auth challenge
path (authorizer on /v2, gateway responses with WWW-Authenticate) exactly when auth is on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from berth.deploy.api import template
from chalicelib.settings import Settings

REPO = Path(__file__).resolve().parents[2]
PUBLIC_URL = "https://registry.example.com"


def package(tmp_path: Path, auth: str) -> dict[str, Any]:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "BERTH_AUTH": auth, "BERTH_PUBLIC_URL": PUBLIC_URL}
    merge = tmp_path / "gateway.json"
    made = subprocess.run([sys.executable, "-m", "berth.deploy.api"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    merge.write_text(made.stdout)
    chalice = Path(sys.executable).with_name("chalice")
    out = tmp_path / "out"
    result = subprocess.run([str(chalice), "package", "--merge-template", str(merge), str(out)], env=env,
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return dict(json.loads((out / "sam.json").read_text()))


def test_token_mode_template_has_the_challenge_path(tmp_path: Path) -> None:
    resources = package(tmp_path, "token")["Resources"]
    paths = resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    authorizer = resources["RestAPI"]["Properties"]["DefinitionBody"]["securityDefinitions"]["credentials"]
    assert authorizer["x-amazon-apigateway-authorizer"]["type"] == "token"
    assert authorizer["name"] == "Authorization"
    for path in ("/v2", "/v2/{proxy+}"):
        for method, operation in paths[path].items():
            assert operation["security"] == [{"credentials": []}], (path, method)
    assert all("security" not in op for op in paths["/token"].values())
    responses = {r["Properties"]["ResponseType"]: r["Properties"] for r in resources.values()
                 if r["Type"] == "AWS::ApiGateway::GatewayResponse"}
    challenge = "'Bearer realm=\"https://registry.example.com/token\",service=\"berth\"'"
    for kind in ("UNAUTHORIZED", "ACCESS_DENIED"):
        assert responses[kind]["StatusCode"] == "401"
        assert responses[kind]["ResponseParameters"]["gatewayresponse.header.WWW-Authenticate"] == challenge
        assert json.loads(responses[kind]["ResponseTemplates"]["application/json"])["errors"][0]["code"]
    # The greedy route, and every request body binary, whatever its Content-Type.
    assert "/v2/{proxy+}" in paths
    assert resources["RestAPI"]["Properties"]["DefinitionBody"]["x-amazon-apigateway-binary-media-types"] == ["*/*"]


def test_without_auth_there_is_no_authorizer(tmp_path: Path) -> None:
    resources = package(tmp_path, "none")["Resources"]
    body = resources["RestAPI"]["Properties"]["DefinitionBody"]
    assert "securityDefinitions" not in body
    assert body["x-amazon-apigateway-binary-media-types"] == ["*/*"]
    assert not [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::GatewayResponse"]


def test_basic_mode_denies_with_403_and_challenges_with_basic() -> None:
    settings = Settings("b", "t", "us-east-1", 60, auth_mode="basic", public_url=PUBLIC_URL)
    responses = {r["Properties"]["ResponseType"]: r["Properties"] for r in template(settings)["Resources"].values()
                 if r.get("Type") == "AWS::ApiGateway::GatewayResponse"}
    assert responses["ACCESS_DENIED"]["StatusCode"] == "403"
    assert responses["UNAUTHORIZED"]["ResponseParameters"]["gatewayresponse.header.WWW-Authenticate"].startswith(
        "'Basic ")


def test_auth_without_a_public_url_is_refused() -> None:
    with pytest.raises(SystemExit):
        template(Settings("b", "t", "us-east-1", 60, auth_mode="token"))
