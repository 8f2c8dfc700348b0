"""A stage from nothing to a registry clients log in to, and back (`make deploy`, `make destroy`).

Up: the storage stack (infra/registry.yaml) → its outputs into .chalice/config.json (the stage's
environment, one IAM policy file per function) → the merge template (berth/deploy/api.py) →
`chalice package` for the configured runtime (berth/deploy/package.py) → bundle and template
into the blob bucket (berth/deploy/artifacts.py) → the app stack. Both stacks are plain
CloudFormation, so a failed update rolls back and a repeated run changes only what changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from berth.deploy import artifacts, templates
from berth.deploy.config import ChaliceConfig
from berth.deploy.policies import policies
from berth.deploy.stacks import StackFailed, Stacks
from berth.deploy.storage import (
    TEMPLATE,
    Storage,
    app_stack,
    default_names,
    deploy_storage,
    storage_stack,
    visibility_timeout,
)

CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND")  # roles per function; the SAM transform
# SQS refuses a queue's name for 60 s after that queue is deleted: a stage destroyed and deployed
# again at once fails to create its verify queue. Waiting this long once is enough.
QUEUE_NAME_WAIT = 65
QUEUE_NAME_REFUSED = ("QueueDeletedRecently", "wait 60 seconds")
# ACM can report a certificate in use for a while after the API's domain that used it is gone,
# and the storage stack's deletion then fails on it: deleting again later succeeds.
CERTIFICATE_WAIT, CERTIFICATE_ATTEMPTS = 60, 20
CERTIFICATE_IN_USE = (" in use", "ResourceInUse")


@dataclass(frozen=True)
class StackChoices:
    """Command-line choices for the storage stack; None means: keep what the stack has."""

    domain: str | None = None
    hosted_zone_id: str | None = None
    certificate_arn: str | None = None
    alarm_topic_arn: str | None = None


class Aws:
    """The clients a deployment uses, in one region."""

    def __init__(self, region: str | None) -> None:
        import boto3

        self.session: Any = boto3.session.Session(region_name=region)
        if not self.session.region_name:
            raise SystemExit("no AWS region: pass REGION=... or set AWS_REGION / a profile's region")
        self.region: str = self.session.region_name

    def client(self, service: str) -> Any:
        return self.session.client(service)

    @property
    def account(self) -> str:
        return str(self.client("sts").get_caller_identity()["Account"])


def storage_parameters(config: ChaliceConfig, stage: str, aws: Aws, previous: dict[str, str],
                       choices: StackChoices) -> dict[str, str]:
    env = config.environment(stage)
    names = default_names(stage, aws.account, aws.region)
    # Names already in the config win: they are what an earlier deployment (or the owner) chose.
    names = {"BucketName": env.get("BERTH_BUCKET") or names["BucketName"],
             "TableName": env.get("BERTH_TABLE") or names["TableName"]}
    chosen = {"DomainName": choices.domain, "HostedZoneId": choices.hosted_zone_id,
              "CertificateArn": choices.certificate_arn, "AlarmTopicArn": choices.alarm_topic_arn}
    kept = {key: value if value is not None else previous.get(key, "") for key, value in chosen.items()}
    if not kept["DomainName"]:
        raise SystemExit("a registry needs a host name of its own (DOMAIN=registry.example.com, with ZONE=<Route 53 "
                         "zone id> or CERT=<ACM certificate ARN>): clients ask for /v2/ at the root of the host, "
                         "and the execute-api URL starts with the stage name. See docs/deploy.md.")
    verify_timeout = int(config.function_setting(stage, "verify_blob", "lambda_timeout"))
    copy_timeout = int(config.function_setting(stage, "copy_blob", "lambda_timeout"))
    return {**names, **kept, "VerifyVisibilityTimeout": visibility_timeout(verify_timeout),
            "CacheVisibilityTimeout": visibility_timeout(copy_timeout)}


def _environment(stage_env: dict[str, str], region: str) -> dict[str, str]:
    """The stage's settings and nothing from the shell: BERTH_* there (a local test's
    BERTH_AUTH=none, say) must not shape what is deployed."""
    shell = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    return {**shell, **stage_env, "AWS_DEFAULT_REGION": region}


def build_app(project_dir: Path, stage: str, storage: Storage, region: str) -> Path:
    """The merge template and `chalice package`, each in a process of its own with the stage's
    environment (Chalice imports app.py, which reads its settings at import)."""
    assert storage.domain and storage.certificate_arn
    build = project_dir / "build" / stage
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    env = _environment(ChaliceConfig(project_dir).environment(stage), region)
    domain = ["--domain-name", storage.domain, "--certificate-arn", storage.certificate_arn]
    if storage.hosted_zone_id:
        domain += ["--hosted-zone-id", storage.hosted_zone_id]
    merge = build / "merge.json"
    made = subprocess.run([sys.executable, "-m", "berth.deploy.api", *domain], env=env, cwd=project_dir,
                          check=True, stdout=subprocess.PIPE, text=True)
    merge.write_text(made.stdout)
    subprocess.run([sys.executable, "-m", "berth.deploy.package", "--project-dir", str(project_dir), "--stage",
                    stage, "--merge-template", str(merge), str(build / "out")], env=env, cwd=project_dir, check=True)
    return build / "out"


def up(project_dir: Path, stage: str, region: str | None, choices: StackChoices,
       say: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep) -> None:
    aws = Aws(region)
    stacks, s3 = Stacks(aws.client("cloudformation"), say, sleep), aws.client("s3")
    config = ChaliceConfig(project_dir)
    previous = stacks.parameters(storage_stack(stage))
    parameters = storage_parameters(config, stage, aws, previous, choices)
    text = (project_dir / TEMPLATE).read_text()
    try:
        storage = deploy_storage(stacks, s3, aws.client("dynamodb"), text, templates.load(text), stage, parameters)
    except StackFailed as failure:
        if not failure.because(*QUEUE_NAME_REFUSED):
            raise
        say(f"SQS keeps a deleted queue's name for 60 s (this stage was removed moments ago): "
            f"waiting {QUEUE_NAME_WAIT} s, then deploying the storage stack again")
        sleep(QUEUE_NAME_WAIT)
        storage = deploy_storage(stacks, s3, aws.client("dynamodb"), text, templates.load(text), stage, parameters)

    env = config.environment(stage)
    config.apply(stage, storage.environment(),
                 policies(storage.grants(stage, env.get("BERTH_EVENT_BUS"), env.get("BERTH_UPSTREAMS"))))
    config.save()
    say(f".chalice/config.json: stage {stage} now names its storage and policy files")

    package_dir = build_app(project_dir, stage, storage, aws.region)
    template_url, bundle = artifacts.upload(s3, storage.bucket, stage, package_dir)
    outputs = stacks.deploy(app_stack(stage), {"TemplateURL": template_url}, capabilities=CAPABILITIES)
    artifacts.prune(s3, storage.bucket, stage, keep={bundle})
    say("")
    say(summary(stage, storage, outputs, config.environment(stage).get("BERTH_AUTH", "none"), aws))


def summary(stage: str, storage: Storage, outputs: dict[str, str], auth: str, aws: Aws) -> str:
    assert storage.domain
    lines = [f"Registry: {storage.public_url}   (stage {stage}, region {aws.region})",
             f"  API Gateway's own URL, for diagnosis only: {outputs.get('EndpointURL', '?')}"]
    if not storage.hosted_zone_id:
        target = aws.client("apigateway").get_domain_name(domainName=storage.domain)["regionalDomainName"]
        lines.append(f"  DNS: point {storage.domain} at {target} (CNAME, or an alias record)")
    where = f"--table {storage.table} --region {aws.region}"
    if auth != "none":
        lines += ["First user (needs AWS credentials that can write the table):",
                  f"  berth user add admin --grant '*=*' {where}"]
    doctor = f"berth doctor {storage.public_url}" + (" --user admin --password-stdin" if auth != "none" else "")
    lines += ["Then:", f"  {doctor}   # checks the live stage (docs/deploy.md)", f"  docker login {storage.domain}",
              f"  docker tag alpine {storage.domain}/team/alpine:1 && docker push {storage.domain}/team/alpine:1"]
    return "\n".join(lines)


def certificate_in_use(say: Callable[[str], None]) -> Callable[[StackFailed], float | None]:
    """`Stacks.delete`'s retry for the storage stack: again while ACM still calls the
    certificate in use, up to CERTIFICATE_ATTEMPTS times."""
    tries = 0

    def retry(failure: StackFailed) -> float | None:
        nonlocal tries
        tries += 1
        if not failure.because(*CERTIFICATE_IN_USE) or tries >= CERTIFICATE_ATTEMPTS:
            return None
        say("ACM still calls the certificate in use: it notices the API's domain is gone only after a while")
        return CERTIFICATE_WAIT

    return retry


def down(project_dir: Path, stage: str, region: str | None, say: Callable[[str], None] = print,
         sleep: Callable[[float], None] = time.sleep) -> None:
    """Remove the app stack and the storage stack. The bucket and table stay (they hold the
    images); a later `make deploy` of the stage adopts them again."""
    aws = Aws(region)
    stacks, s3 = Stacks(aws.client("cloudformation"), say, sleep), aws.client("s3")
    outputs = stacks.outputs(storage_stack(stage))
    stacks.delete(app_stack(stage))
    # The config `make deploy` wrote names the storage too: the artifacts go even when the
    # storage stack has no outputs (gone already, or its last change failed).
    env = ChaliceConfig(project_dir).environment(stage)
    bucket = outputs.get("BucketName") or env.get("BERTH_BUCKET")
    table = outputs.get("TableName") or env.get("BERTH_TABLE")
    if bucket:
        try:
            artifacts.prune(s3, bucket, stage, keep=set())
        except s3.exceptions.NoSuchBucket:
            say(f"bucket {bucket} does not exist: no deployment artifacts to remove")
    else:
        say(f"no bucket known for stage {stage} (no storage stack outputs, no BERTH_BUCKET in .chalice/config.json): "
            f"deployment artifacts under {artifacts.prefix(stage)} in its bucket, if any, are left")
    stacks.delete(storage_stack(stage), retry=certificate_in_use(say))
    if bucket and table:
        say(f"Kept: bucket {bucket} and table {table} (the images, users and tokens).\n"
            f"`make deploy STAGE={stage}` takes them back. To delete them for good (irreversible):\n"
            f"  aws s3 rm s3://{bucket} --recursive && aws s3 rb s3://{bucket}\n"
            f"  aws dynamodb update-table --table-name {table} --no-deletion-protection-enabled\n"
            f"  aws dynamodb delete-table --table-name {table}")
