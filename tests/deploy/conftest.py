"""The app template `make deploy` would deploy, built offline the way it builds it: a copy of
the project whose prod stage gets a storage stack's outputs (berth.deploy.config), then the
merge template and `chalice package` (berth.deploy.stage.build_app). One per session and auth
mode: packaging takes seconds."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from berth.deploy import artifacts
from berth.deploy.config import ChaliceConfig
from berth.deploy.policies import policies
from berth.deploy.stage import build_app
from berth.deploy.storage import Storage
from chalicelib.storage.clients import AwsClients

REPO = Path(__file__).resolve().parents[2]
STAGE, REGION, ACCOUNT = "prod", "us-east-1", "123456789012"
EVENT_BUS = "registry-events"
STORAGE = Storage(
    bucket=f"berth-prod-{ACCOUNT}-{REGION}",
    bucket_arn=f"arn:aws:s3:::berth-prod-{ACCOUNT}-{REGION}",
    table="berth-prod",
    table_arn=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/berth-prod",
    secret_arn=f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:SigningSecret-AbCdEf",
    queue_name="berth-prod-storage-verify",
    queue_url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/berth-prod-storage-verify",
    queue_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:berth-prod-storage-verify",
    dead_letter_url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/berth-prod-storage-verify-dead",
    domain="registry.example.com",
    hosted_zone_id="Z0123456789ABC",
    certificate_arn=f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0000-1111",
    cache_queue_name="berth-prod-storage-cache",
    cache_queue_url=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/berth-prod-storage-cache",
    cache_queue_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:berth-prod-storage-cache",
)


def project_copy(into: Path) -> Path:
    """What `chalice package` reads: the app, its library, its requirements and its config."""
    into.mkdir(parents=True)
    shutil.copy(REPO / "app.py", into)
    shutil.copy(REPO / "requirements.txt", into)
    shutil.copytree(REPO / "chalicelib", into / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    (into / ".chalice").mkdir()
    shutil.copy(REPO / ".chalice" / "config.json", into / ".chalice")
    return into


@dataclass
class Packaged:
    project: Path
    template: dict[str, Any]
    config: ChaliceConfig

    @property
    def path(self) -> Path:
        return self.project / "build" / STAGE / "out" / "sam.json"

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.template["Resources"])

    def of_type(self, kind: str) -> dict[str, Any]:
        return {name: r for name, r in self.resources.items() if r["Type"] == kind}


def package_stage(into: Path, auth: str, stage_settings: dict[str, Any] | None = None) -> Packaged:
    project = project_copy(into)
    config = ChaliceConfig(project)
    config.data["stages"][STAGE].update(stage_settings or {})
    config.data["stages"][STAGE]["environment_variables"].update({"BERTH_AUTH": auth, "BERTH_EVENT_BUS": EVENT_BUS})
    config.apply(STAGE, STORAGE.environment(), policies(STORAGE.grants(STAGE, EVENT_BUS)))
    config.save()
    out = build_app(project, STAGE, STORAGE, REGION)
    return Packaged(project, json.loads((out / "sam.json").read_text()), ChaliceConfig(project))


@pytest.fixture(scope="session")
def packaging(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Packaged]:
    made: dict[str, Packaged] = {}

    def get(auth: str) -> Packaged:
        if auth not in made:
            made[auth] = package_stage(tmp_path_factory.mktemp(f"package-{auth}") / "project", auth)
        return made[auth]

    return get


@pytest.fixture
def packaged(packaging: Callable[[str], Packaged]) -> Packaged:
    """The prod stage as configured: token auth, a custom domain, events on."""
    return packaging("token")


@pytest.fixture(scope="session")
def uploaded(packaging: Callable[[str], Packaged], aws: AwsClients) -> tuple[str, str, dict[str, Any]]:
    """The prod stage's bundle and template uploaded as `make deploy` does (to moto's S3):
    the template's URL, the bundle's key, and the template CloudFormation will read."""
    aws.s3.create_bucket(Bucket=STORAGE.bucket)
    url, bundle = artifacts.upload(aws.s3, STORAGE.bucket, STAGE, packaging("token").path.parent)
    key = url.split(f"/{STORAGE.bucket}/", 1)[1]
    return url, bundle, json.loads(aws.s3.get_object(Bucket=STORAGE.bucket, Key=key)["Body"].read())


@pytest.fixture(scope="session")
def translated(uploaded: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """That template after the SAM transform: what CloudFormation will create."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    return dict(transform(json.loads(json.dumps(uploaded[2])), {}, NoManagedPolicies()))
