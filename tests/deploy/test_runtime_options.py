"""What the packaged template adds beyond Chalice (berth/deploy/package.py): SnapStart for the
API function with everything that invokes it pointed at its published alias, the integration
timeout when raised, and arm64 with a bundle whose compiled wheel (bcrypt) is arm64's."""

from __future__ import annotations

import copy
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from berth.deploy.config import ChaliceConfig
from berth.deploy.package import ALIAS, extend
from tests.deploy.conftest import STAGE, Packaged, package_stage
from tests.deploy.test_functions import lint

ALIAS_ID = f"APIHandlerAlias{ALIAS}"
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}


def integrations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [op["x-amazon-apigateway-integration"] for methods in body["paths"].values()
            for op in methods.values() if isinstance(op, dict) and "x-amazon-apigateway-integration" in op]


def test_the_api_function_snapshots_its_published_versions(packaged: Packaged) -> None:
    properties = packaged.resources["APIHandler"]["Properties"]
    assert properties["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert properties["AutoPublishAlias"] == ALIAS
    assert packaged.config.function_setting(STAGE, "api_handler", "snap_start") is True
    assert "SnapStart" not in packaged.resources["Credentials"]["Properties"]


def test_api_gateway_invokes_the_alias_not_latest(translated: dict[str, Any]) -> None:
    """SnapStart restores published versions only: an API that kept invoking $LATEST would
    never see a snapshot. Every integration and the invoke permission name the alias, and the
    alias SAM made points at a version of the function."""
    resources = translated["Resources"]
    alias = resources[ALIAS_ID]
    assert alias["Type"] == "AWS::Lambda::Alias" and alias["Properties"]["Name"] == ALIAS
    version = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    assert resources[version]["Type"] == "AWS::Lambda::Version"
    assert resources[version]["Properties"]["FunctionName"] == {"Ref": "APIHandler"}
    body = resources["RestAPI"]["Properties"]["Body"]
    uris = [i["uri"]["Fn::Sub"] for i in integrations(body)]
    assert uris and all(f"${{{ALIAS_ID}}}" in uri and "APIHandler.Arn" not in uri for uri in uris)
    (permission,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"
                     and r["Properties"]["Principal"] == "apigateway.amazonaws.com"
                     and r["Properties"]["FunctionName"] in ({"Ref": ALIAS_ID}, {"Ref": "APIHandler"})]
    assert permission["FunctionName"] == {"Ref": ALIAS_ID}


def config_with(packaged: Packaged, change: dict[str, Any], handler: dict[str, Any] | None = None) -> ChaliceConfig:
    config = ChaliceConfig(packaged.project)
    config.data = copy.deepcopy(config.data)
    config.data["stages"][STAGE].update(change)
    config.data["stages"][STAGE]["lambda_functions"]["api_handler"].update(handler or {})
    return config


def test_a_raised_integration_timeout_reaches_every_method(packaged: Packaged) -> None:
    template = copy.deepcopy(packaged.template)
    extend(template, config_with(packaged, {"api_integration_timeout": 120}, {"lambda_timeout": 120}), STAGE)
    found = integrations(template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"])
    assert found and all(i["timeoutInMillis"] == 120_000 for i in found)
    # The default leaves API Gateway's own 29 s in place.
    assert all("timeoutInMillis" not in i for i in integrations(packaged.resources["RestAPI"]["Properties"]
                                                                ["DefinitionBody"]))


def test_a_function_that_would_die_before_the_gateway_gives_up_is_refused(packaged: Packaged) -> None:
    with pytest.raises(SystemExit, match="lambda_timeout"):
        extend(copy.deepcopy(packaged.template),
               config_with(packaged, {"api_integration_timeout": 120}, {"lambda_timeout": 60}), STAGE)


def test_snap_start_needs_python_312_and_an_api_function(packaged: Packaged) -> None:
    old = config_with(packaged, {})
    old.data["lambda_python_version"] = "python3.11"
    with pytest.raises(SystemExit, match="3.12"):
        extend(copy.deepcopy(packaged.template), old, STAGE)
    queued = config_with(packaged, {})
    queued.data["lambda_functions"]["verify_blob"]["snap_start"] = True
    with pytest.raises(SystemExit, match="verify_blob"):
        extend(copy.deepcopy(packaged.template), queued, STAGE)


def elf_machine(bundle: Path, member: str) -> str:
    with zipfile.ZipFile(bundle) as archive:
        header = archive.read(member)[:20]
    assert header[:4] == b"\x7fELF", member
    return ELF_MACHINES.get(struct.unpack_from("<H", header, 18)[0], "other")


def test_the_x86_bundle_carries_x86_bcrypt(packaged: Packaged) -> None:
    assert packaged.config.setting(STAGE, "lambda_architecture") in (None, "x86_64")
    assert {p["Properties"]["Architectures"][0] for p in packaged.of_type("AWS::Serverless::Function").values()} \
        == {"x86_64"}
    assert elf_machine(packaged.path.parent / "deployment.zip", "bcrypt/_bcrypt.abi3.so") == "x86_64"


def test_an_arm64_stage_packages_arm64_functions_with_arm64_bcrypt(tmp_path: Path) -> None:
    """`"lambda_architecture": "arm64"` in the stage: every function says arm64, Chalice fetches
    the manylinux aarch64 wheel of bcrypt for the runtime, and the result passes cfn-lint."""
    packaged = package_stage(tmp_path / "project", "token", {"lambda_architecture": "arm64"})
    functions = packaged.of_type("AWS::Serverless::Function")
    assert {f["Properties"]["Architectures"][0] for f in functions.values()} == {"arm64"}
    assert elf_machine(packaged.path.parent / "deployment.zip", "bcrypt/_bcrypt.abi3.so") == "aarch64"
    assert functions["APIHandler"]["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert lint(packaged.path) == []
    assert json.loads(packaged.path.read_text())["Resources"]["APIHandler"]["Properties"]["Architectures"] == ["arm64"]
