"""`chalice package` for the Lambda runtime named in .chalice/config.json.

Chalice (1.34) has no runtime setting: it packages for the Python that runs it, choosing the
runtime and the wheels of compiled dependencies (bcrypt) by `Config.lambda_python_version`.
This runs Chalice's own `package` command with that property answering the configured
runtime instead, so any machine packages the same bundle. Dependencies must then exist as
wheels for that runtime (Chalice downloads manylinux ones; ours are pure Python or abi3).

It also corrects what Chalice gets wrong in the template (`_repair`), and adds what Chalice
cannot say (`extend`): Lambda SnapStart for the functions whose config says `"snap_start":
true` (the API handler by default), and API Gateway's integration timeout when
`api_integration_timeout` (seconds) raises it above 29 (docs/deploy.md).

    python -m berth.deploy.package --stage prod --merge-template build/merge.json build/out
"""

from __future__ import annotations

import argparse
import json
import re
import warnings
from pathlib import Path
from typing import Any

from berth.deploy.config import ChaliceConfig

TEMPLATE = "sam.json"
# SnapStart restores published versions only, so a function with it gets a version per
# deployment and an alias for it, which API Gateway must invoke instead of $LATEST. SAM names
# the alias resource <function>Alias<alias>.
ALIAS = "live"
SNAP_START_KEY, INTEGRATION_TIMEOUT_KEY = "snap_start", "api_integration_timeout"
SNAP_START_RUNTIMES = ("python3.12", "python3.13", "python3.14")
# Only functions API Gateway invokes: their alias is all there is to rewire.
SNAP_START_FUNCTIONS = {"api_handler": "APIHandler", "credentials": "Credentials"}
DEFAULT_INTEGRATION_TIMEOUT = 29


def package(project_dir: Path, stage: str, merge_template: Path, out: Path) -> None:
    from chalice.cli import cli
    from chalice.config import Config

    runtime = ChaliceConfig(project_dir).runtime
    Config.lambda_python_version = property(lambda self: runtime)  # type: ignore[assignment,method-assign]
    # Chalice warns when the runtime differs from the Python running it: here that is the point.
    warnings.filterwarnings("ignore", message="You are currently running")
    cli.main(args=["--project-dir", str(project_dir), "package", "--stage", stage, "--merge-template",
                   str(merge_template), str(out)], obj={}, standalone_mode=False)
    path = out / TEMPLATE
    template = json.loads(path.read_text())
    _repair(template)
    extend(template, ChaliceConfig(project_dir), stage)
    path.write_text(json.dumps(template, indent=2))


def _repair(template: dict[str, Any]) -> None:
    """Chalice names the API handler's log group after `${ApiHandler}`, then renames that
    function's resource to `APIHandler`: CloudFormation would refuse the dangling reference."""
    group = template["Resources"].get("ApiHandlerLogGroup")
    if group and "ApiHandler" not in template["Resources"]:
        group["Properties"]["LogGroupName"] = {"Fn::Sub": "/aws/lambda/${APIHandler}"}


def extend(template: dict[str, Any], config: ChaliceConfig, stage: str) -> None:
    for function, logical in SNAP_START_FUNCTIONS.items():
        if config.function_setting(stage, function, SNAP_START_KEY):
            if config.runtime not in SNAP_START_RUNTIMES:
                raise SystemExit(f"{function}: SnapStart needs a Python 3.12+ runtime, not {config.runtime}")
            snap_start(template, logical)
    others = set(config.data.get("lambda_functions", {})) - set(SNAP_START_FUNCTIONS)
    for function in sorted(others):
        if config.function_setting(stage, function, SNAP_START_KEY):
            raise SystemExit(f"{function}: SnapStart is offered for functions API Gateway invokes only")
    timeout = int(config.setting(stage, INTEGRATION_TIMEOUT_KEY) or DEFAULT_INTEGRATION_TIMEOUT)
    handler_timeout = int(config.function_setting(stage, "api_handler", "lambda_timeout"))
    if handler_timeout < timeout:
        raise SystemExit(f"api_handler's lambda_timeout ({handler_timeout} s) is shorter than "
                         f"{INTEGRATION_TIMEOUT_KEY} ({timeout} s): raise it too")
    if timeout != DEFAULT_INTEGRATION_TIMEOUT:
        integration_timeout(template, timeout)


def snap_start(template: dict[str, Any], logical: str) -> None:
    """SnapStart on `logical`'s published versions, and everything that invoked the function
    (API Gateway's integrations and authorizer, its invoke permission) pointed at the alias."""
    resources = template["Resources"]
    resources[logical]["Properties"].update({"SnapStart": {"ApplyOn": "PublishedVersions"},
                                             "AutoPublishAlias": ALIAS})
    alias = f"{logical}Alias{ALIAS}"
    arn = re.compile(r"\$\{" + re.escape(logical) + r"\.Arn\}")

    def repoint(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: repoint(v) for k, v in node.items()}
        if isinstance(node, list):
            return [repoint(v) for v in node]
        return arn.sub("${" + alias + "}", node) if isinstance(node, str) else node

    api = resources["RestAPI"]["Properties"]
    api["DefinitionBody"] = repoint(api["DefinitionBody"])
    for resource in resources.values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Permission" and properties.get("FunctionName") in (
                {"Ref": logical}, {"Fn::GetAtt": [logical, "Arn"]}):
            properties["FunctionName"] = {"Ref": alias}


def integration_timeout(template: dict[str, Any], seconds: int) -> None:
    """API Gateway's wait for the Lambda integration, on every method. Above 29 s a regional
    REST API needs its account's "Maximum integration timeout" quota raised first."""
    for methods in template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"].values():
        for operation in methods.values():
            if isinstance(operation, dict) and "x-amazon-apigateway-integration" in operation:
                operation["x-amazon-apigateway-integration"]["timeoutInMillis"] = seconds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m berth.deploy.package", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument("--stage", required=True)
    parser.add_argument("--merge-template", type=Path, required=True)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    package(args.project_dir.resolve(), args.stage, args.merge_template, args.out)


if __name__ == "__main__":
    main()
