"""The storage stack (infra/registry.yaml): its name and parameters for a stage, its outputs as
the registry's environment and IAM grants, and how a stage deleted earlier gets its retained
bucket and table back."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from berth.deploy.policies import Grants
from berth.deploy.stacks import Stacks
from chalicelib.cache.rules import CacheConfig

TEMPLATE = Path("infra") / "registry.yaml"
# Resources the stack keeps when deleted (DeletionPolicy: Retain), by logical id.
RETAINED = {"Blobs": ("AWS::S3::Bucket", "BucketName"), "Metadata": ("AWS::DynamoDB::Table", "TableName")}
# AWS recommends a visibility timeout of six times the consuming function's timeout.
VISIBILITY_PER_TIMEOUT = 6
# What the registry needs from the storage stack (infra/registry.yaml's Outputs).
REQUIRED_OUTPUTS = ("BucketName", "BucketArn", "TableName", "TableArn", "SigningSecretArn", "VerifyQueueName",
                    "VerifyQueueUrl", "VerifyQueueArn", "VerifyDeadLetterQueueUrl")


def storage_stack(stage: str) -> str:
    return f"berth-{stage}-storage"


def app_stack(stage: str) -> str:
    return f"berth-{stage}"


def default_names(stage: str, account: str, region: str) -> dict[str, str]:
    # Bucket names are global: the account and region make the default one unique.
    return {"BucketName": f"berth-{stage}-{account}-{region}", "TableName": f"berth-{stage}"}


def visibility_timeout(verify_timeout: int) -> str:
    return str(min(VISIBILITY_PER_TIMEOUT * verify_timeout, 43_200))


@dataclass(frozen=True)
class Storage:
    bucket: str
    bucket_arn: str
    table: str
    table_arn: str
    secret_arn: str
    queue_name: str
    queue_url: str
    queue_arn: str
    dead_letter_url: str
    domain: str | None = None
    hosted_zone_id: str | None = None
    certificate_arn: str | None = None
    cache_queue_name: str = ""  # the pull-through cache's copy queue (docs/cache.md)
    cache_queue_url: str = ""
    cache_queue_arn: str = ""

    @classmethod
    def from_outputs(cls, outputs: dict[str, str], stack: str = "the storage stack") -> Storage:
        missing = [key for key in REQUIRED_OUTPUTS if key not in outputs]
        if missing:
            raise SystemExit(
                f"{stack} lacks the output(s) {', '.join(missing)}. CloudFormation lists a stack's outputs only "
                "once a create or update of it has succeeded, and only those its template declared then: the "
                "stack was made from an older infra/registry.yaml, or its last change failed (see its events). "
                "Run `make deploy` again to update it.")
        return cls(outputs["BucketName"], outputs["BucketArn"], outputs["TableName"], outputs["TableArn"],
                   outputs["SigningSecretArn"], outputs["VerifyQueueName"], outputs["VerifyQueueUrl"],
                   outputs["VerifyQueueArn"], outputs["VerifyDeadLetterQueueUrl"], outputs.get("DomainName"),
                   outputs.get("HostedZoneId"), outputs.get("CertificateArn"), outputs.get("CacheQueueName", ""),
                   outputs.get("CacheQueueUrl", ""), outputs.get("CacheQueueArn", ""))

    @property
    def public_url(self) -> str | None:
        return f"https://{self.domain}" if self.domain else None

    def environment(self) -> dict[str, str]:
        """What the registry reads (chalicelib/settings.py), for the stage's config."""
        env = {"BERTH_BUCKET": self.bucket, "BERTH_TABLE": self.table, "BERTH_SIGNING_SECRET_ID": self.secret_arn,
               "BERTH_VERIFY_QUEUE": self.queue_name, "BERTH_VERIFY_QUEUE_URL": self.queue_url}
        if self.public_url:
            env["BERTH_PUBLIC_URL"] = self.public_url
        if self.cache_queue_url:
            env.update({"BERTH_CACHE_QUEUE": self.cache_queue_name, "BERTH_CACHE_QUEUE_URL": self.cache_queue_url})
        return env

    def grants(self, stage: str, event_bus: str | None = None, upstreams: str | None = None) -> Grants:
        """What the stage's functions may touch; `upstreams` is the stage's BERTH_UPSTREAMS
        (its rules decide whether the cache's storage is granted, and which secrets)."""
        _, partition, _, region, account = self.table_arn.split(":")[:5]
        bus_arn = None
        if event_bus:
            bus_arn = event_bus if event_bus.startswith("arn:") else \
                f"arn:{partition}:events:{region}:{account}:event-bus/{event_bus}"
        # CloudFormation names the app stack's functions <stack>-<logical id>-<suffix>.
        logs = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{app_stack(stage)}-*"
        cache = CacheConfig.from_env({"BERTH_UPSTREAMS": upstreams or ""})
        named = {r.credentials.name for r in cache.rules if r.credentials and r.credentials.kind == "secret"}
        # A secret given by name: its ARN ends in a dash and six characters Secrets Manager chose.
        secrets = tuple(sorted(name if name.startswith("arn:") else
                               f"arn:{partition}:secretsmanager:{region}:{account}:secret:{name}-??????"
                               for name in named))
        return Grants(self.bucket_arn, self.table_arn, self.secret_arn, self.queue_arn, logs, bus_arn,
                      self.cache_queue_arn or None, cache.enabled, secrets)


def import_template(template: dict[str, Any], table_indexes: Collection[str] = ()) -> dict[str, Any]:
    """The retained resources alone, as an IMPORT change set wants them: only resources being
    imported, no outputs, nothing that refers to resources not yet there (the update that
    follows adds those). The table as it is: with the indexes it has (`table_indexes`), so
    that the update adds those a table retained by an older version lacks."""
    resources = {}
    for logical_id in RETAINED:
        resource = {k: v for k, v in template["Resources"][logical_id].items() if k != "DependsOn"}
        properties = dict(resource["Properties"])
        properties.pop("NotificationConfiguration", None)  # names the queue
        if "GlobalSecondaryIndexes" in properties:
            properties = _with_indexes(properties, table_indexes)
        resources[logical_id] = {**resource, "Properties": properties}
    return {"AWSTemplateFormatVersion": template["AWSTemplateFormatVersion"],
            "Parameters": template["Parameters"], "Resources": resources}


def _with_indexes(table: dict[str, Any], names: Collection[str]) -> dict[str, Any]:
    """A table's properties with only the named indexes, and the attributes its keys use."""
    indexes = [i for i in table["GlobalSecondaryIndexes"] if i["IndexName"] in names]
    keyed = {k["AttributeName"] for schema in [table["KeySchema"], *(i["KeySchema"] for i in indexes)] for k in schema}
    table = {k: v for k, v in table.items() if k != "GlobalSecondaryIndexes"}
    if indexes:
        table["GlobalSecondaryIndexes"] = indexes
    table["AttributeDefinitions"] = [a for a in table["AttributeDefinitions"] if a["AttributeName"] in keyed]
    return table


def table_indexes(dynamodb: Any, table: str) -> list[str]:
    return [i["IndexName"] for i in dynamodb.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])]


def retained_leftovers(s3: Any, dynamodb: Any, names: dict[str, str]) -> list[dict[str, Any]]:
    """The bucket and table an earlier storage stack of this stage left behind, as resources to
    import. Both or neither: one without the other is not a registry this tool made."""
    found = []
    try:
        s3.head_bucket(Bucket=names["BucketName"])
        found.append("Blobs")
    except ClientError as err:
        if err.response["Error"]["Code"] in ("403", "AccessDenied"):
            raise SystemExit(f"bucket {names['BucketName']} belongs to someone else: choose another name in "
                             "the stage's BERTH_BUCKET") from None
    try:
        dynamodb.describe_table(TableName=names["TableName"])
        found.append("Metadata")
    except dynamodb.exceptions.ResourceNotFoundException:
        pass
    if not found:
        return []
    if len(found) == 1:
        raise SystemExit(f"{found[0]} exists without its partner ({names}): choose other names in the stage's "
                         "BERTH_BUCKET/BERTH_TABLE, or remove it")
    return [{"ResourceType": kind, "LogicalResourceId": logical_id,
             "ResourceIdentifier": {key: names[key]}} for logical_id, (kind, key) in RETAINED.items()]


def deploy_storage(stacks: Stacks, s3: Any, dynamodb: Any, template_text: str, template: dict[str, Any],
                   stage: str, parameters: dict[str, str]) -> Storage:
    """Create or update the stage's storage stack. A new stack first adopts the bucket and
    table a deleted one retained, so `make destroy` then `make deploy` keeps the images."""
    name = storage_stack(stage)
    current = stacks.parameters(name)
    for _, key in RETAINED.values():
        if current.get(key, parameters[key]) != parameters[key]:
            raise SystemExit(f"{name} has {key}={current[key]}, the config says {parameters[key]}: "
                             "renaming would start an empty registry. Put the old name back in the config.")
    if not current:
        leftovers = retained_leftovers(s3, dynamodb, parameters)
        if leftovers:
            indexes = table_indexes(dynamodb, parameters["TableName"])
            stacks.deploy(name, {"TemplateBody": json.dumps(import_template(template, indexes))}, parameters,
                          import_resources=leftovers)
    return Storage.from_outputs(stacks.deploy(name, {"TemplateBody": template_text}, parameters), name)
