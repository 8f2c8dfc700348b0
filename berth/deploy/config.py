""".chalice/config.json as `make deploy` reads and writes it: the settings a stage resolves to
(looked up the way Chalice does), and the stage's storage outputs and IAM policy files written
back after the storage stack is deployed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from berth.deploy.policies import FUNCTIONS

CONFIG = Path(".chalice") / "config.json"
# Not a Chalice setting: Chalice packages for the Python that runs it. berth.deploy.package
# makes it package for this one instead (docs/deploy.md).
RUNTIME_KEY = "lambda_python_version"


def policy_file(stage: str, function: str) -> str:
    return f"policy-{stage}-{function}.json"


class ChaliceConfig:
    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir
        self.data: dict[str, Any] = json.loads((project_dir / CONFIG).read_text())

    def save(self) -> None:
        (self.project_dir / CONFIG).write_text(json.dumps(self.data, indent=2) + "\n")

    def stage(self, stage: str) -> dict[str, Any]:
        stages = self.data.get("stages", {})
        if stage not in stages:
            raise SystemExit(f"no stage {stage!r} in {CONFIG}: add one (copy 'prod') first")
        return dict(stages[stage])

    @property
    def runtime(self) -> str:
        return str(self.data[RUNTIME_KEY])

    def environment(self, stage: str) -> dict[str, str]:
        """The variables every function of the stage gets (per-function ones aside)."""
        return {**self.data.get("environment_variables", {}), **self.stage(stage).get("environment_variables", {})}

    def setting(self, stage: str, key: str) -> Any:
        """A stage-wide value: the stage's, else the top level's."""
        staged = self.stage(stage).get(key)
        return staged if staged is not None else self.data.get(key)

    def function_setting(self, stage: str, function: str, key: str) -> Any:
        """Chalice's order: the stage's function entry, the stage, the top-level function entry, the top level."""
        top, staged = self.data, self.stage(stage)
        for scope in (staged.get("lambda_functions", {}).get(function, {}), staged,
                      top.get("lambda_functions", {}).get(function, {}), top):
            if scope.get(key) is not None:
                return scope[key]
        return None

    def apply(self, stage: str, environment: Mapping[str, str], policies: Mapping[str, dict[str, Any]]) -> None:
        """Record what the stage was deployed with: its storage in the environment, and one
        policy file per function (written next to config.json, as Chalice expects)."""
        entry = self.data["stages"].setdefault(stage, {})
        entry.setdefault("environment_variables", {}).update(environment)
        functions = entry.setdefault("lambda_functions", {})
        for function in FUNCTIONS:
            name = policy_file(stage, function)
            (self.project_dir / CONFIG.parent / name).write_text(json.dumps(policies[function], indent=2) + "\n")
            functions.setdefault(function, {})["iam_policy_file"] = name
