"""`chalice package` for the Lambda runtime named in .chalice/config.json.

Chalice (1.34) has no runtime setting: it packages for the Python that runs it, choosing the
runtime and the wheels of compiled dependencies (bcrypt) by `Config.lambda_python_version`.
This runs Chalice's own `package` command with that property answering the configured
runtime instead, so any machine packages the same bundle. Dependencies must then exist as
wheels for that runtime (Chalice downloads manylinux ones; ours are pure Python or abi3).

It also corrects what Chalice gets wrong in the template (`_repair`).

    python -m berth.deploy.package --stage prod --merge-template build/merge.json build/out
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from berth.deploy.config import ChaliceConfig

TEMPLATE = "sam.json"


def package(project_dir: Path, stage: str, merge_template: Path, out: Path) -> None:
    from chalice.cli import cli
    from chalice.config import Config

    runtime = ChaliceConfig(project_dir).runtime
    Config.lambda_python_version = property(lambda self: runtime)  # type: ignore[assignment,method-assign]
    # Chalice warns when the runtime differs from the Python running it: here that is the point.
    warnings.filterwarnings("ignore", message="You are currently running")
    cli.main(args=["--project-dir", str(project_dir), "package", "--stage", stage, "--merge-template",
                   str(merge_template), str(out)], obj={}, standalone_mode=False)
    _repair(out / TEMPLATE)


def _repair(path: Path) -> None:
    """Chalice names the API handler's log group after `${ApiHandler}`, then renames that
    function's resource to `APIHandler`: CloudFormation would refuse the dangling reference."""
    template = json.loads(path.read_text())
    group = template["Resources"].get("ApiHandlerLogGroup")
    if group and "ApiHandler" not in template["Resources"]:
        group["Properties"]["LogGroupName"] = {"Fn::Sub": "/aws/lambda/${APIHandler}"}
        path.write_text(json.dumps(template, indent=2))


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
