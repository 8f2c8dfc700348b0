"""`make deploy` piece by piece, offline: the config it writes, the storage stack's parameters
and outputs, adopting a retained bucket and table, the artifacts in S3 (moto), and the
CloudFormation conversation (botocore's Stubber, which checks every request against the API)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from berth.deploy import artifacts, templates
from berth.deploy.config import ChaliceConfig
from berth.deploy.policies import FUNCTIONS, policies
from berth.deploy.stacks import StackFailed, Stacks
from berth.deploy.stage import StackChoices, storage_parameters
from berth.deploy.storage import RETAINED, TEMPLATE, deploy_storage, import_template, retained_leftovers
from chalicelib.storage.clients import AwsClients
from tests.deploy.conftest import ACCOUNT, REGION, REPO, STORAGE, project_copy

OUTPUTS = {"BucketName": STORAGE.bucket, "BucketArn": STORAGE.bucket_arn, "TableName": STORAGE.table,
           "TableArn": STORAGE.table_arn, "SigningSecretArn": STORAGE.secret_arn,
           "VerifyQueueName": STORAGE.queue_name, "VerifyQueueUrl": STORAGE.queue_url,
           "VerifyQueueArn": STORAGE.queue_arn, "VerifyDeadLetterQueueUrl": STORAGE.dead_letter_url,
           "DomainName": "registry.example.com", "HostedZoneId": "Z0123456789ABC",
           "CertificateArn": STORAGE.certificate_arn or "", "CacheQueueName": STORAGE.cache_queue_name,
           "CacheQueueUrl": STORAGE.cache_queue_url, "CacheQueueArn": STORAGE.cache_queue_arn}


class FakeAws:
    account, region = ACCOUNT, REGION


def test_the_config_gets_the_storage_and_a_policy_file_per_function(tmp_path: Path) -> None:
    project = project_copy(tmp_path / "project")
    config = ChaliceConfig(project)
    config.apply("prod", STORAGE.environment(), policies(STORAGE.grants("prod")))
    config.save()
    saved = ChaliceConfig(project)
    env = saved.environment("prod")
    assert env["BERTH_BUCKET"] == STORAGE.bucket and env["BERTH_VERIFY_QUEUE"] == STORAGE.queue_name
    assert env["BERTH_PUBLIC_URL"] == "https://registry.example.com"
    assert env["POWERTOOLS_SERVICE_NAME"] == "berth-prod"  # what was there stays
    for function in FUNCTIONS:
        name = saved.function_setting("prod", function, "iam_policy_file")
        assert json.loads((project / ".chalice" / name).read_text())["Statement"]
        assert saved.function_setting("prod", function, "lambda_timeout")  # from the top-level entry
    assert saved.function_setting("prod", "verify_blob", "lambda_timeout") == 900
    assert saved.data["autogen_policy"] is False and saved.runtime in ("python3.12", "python3.13")


def test_storage_parameters_need_a_domain_and_keep_earlier_choices() -> None:
    config = ChaliceConfig(REPO)
    aws: Any = FakeAws()
    with pytest.raises(SystemExit, match="host name"):
        storage_parameters(config, "prod", aws, {}, StackChoices())
    first = storage_parameters(config, "prod", aws, {}, StackChoices("r.example.com", "Z1"))
    assert first == {"BucketName": f"berth-prod-{ACCOUNT}-{REGION}", "TableName": "berth-prod",
                     "DomainName": "r.example.com", "HostedZoneId": "Z1", "CertificateArn": "",
                     "AlarmTopicArn": "", "VerifyVisibilityTimeout": "5400", "CacheVisibilityTimeout": "5400"}
    again = storage_parameters(config, "prod", aws, first, StackChoices())
    assert again == first
    config.data["stages"]["prod"]["environment_variables"]["BERTH_BUCKET"] = "my-own-bucket"
    assert storage_parameters(config, "prod", aws, first, StackChoices())["BucketName"] == "my-own-bucket"


def test_an_alarm_topic_is_remembered_until_cleared() -> None:
    config, aws = ChaliceConfig(REPO), FakeAws()
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:registry-alerts"
    first = storage_parameters(config, "prod", aws, {}, StackChoices("r.example.com", alarm_topic_arn=topic))
    assert first["AlarmTopicArn"] == topic
    assert storage_parameters(config, "prod", aws, first, StackChoices())["AlarmTopicArn"] == topic
    assert storage_parameters(config, "prod", aws, first, StackChoices(alarm_topic_arn=""))["AlarmTopicArn"] == ""


def test_grants_name_the_event_bus_by_arn() -> None:
    assert STORAGE.grants("prod").event_bus_arn is None
    assert STORAGE.grants("prod", "bus").event_bus_arn == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/bus"
    arn = "arn:aws:events:eu-west-1:999999999999:event-bus/central"
    assert STORAGE.grants("prod", arn).event_bus_arn == arn
    assert STORAGE.grants("prod").log_groups_arn == \
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/berth-prod-*"


def test_grants_name_the_cache_rules_secrets_and_only_with_rules_its_storage() -> None:
    assert not STORAGE.grants("prod").cache
    rules = json.dumps({"hub/": {"url": "https://registry-1.docker.io"},
                        "ghcr/": {"url": "https://ghcr.io", "credentials": {"secret": "ghcr-pull"}},
                        "quay/": {"url": "https://quay.io", "credentials": {
                            "secret": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:quay-AbCdEf"}},
                        "mine/": {"url": "https://r.example.com", "credentials": {"env": "MINE"}}})
    grants = STORAGE.grants("prod", upstreams=rules)
    assert grants.cache and grants.cache_queue_arn == STORAGE.cache_queue_arn
    assert grants.upstream_secrets == (f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ghcr-pull-??????",
                                       f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:quay-AbCdEf")
    without, cached = policies(STORAGE.grants("prod")), policies(grants)
    assert "cache/" not in json.dumps(without["api_handler"]) and "cache/" in json.dumps(cached["api_handler"])
    # The copier's trigger polls its queue either way: Lambda checks the role when it is created.
    assert STORAGE.cache_queue_arn in json.dumps(without["copy_blob"])


def test_the_import_template_holds_the_retained_resources_alone(tmp_path: Path) -> None:
    from cfnlint.api import lint_file

    full = templates.load((REPO / TEMPLATE).read_text())
    template = import_template(full, ["sweep"])
    assert set(template["Resources"]) == set(RETAINED) and "Outputs" not in template
    for resource in template["Resources"].values():
        assert resource["DeletionPolicy"] == "Retain" and "DependsOn" not in resource
    assert "NotificationConfiguration" not in template["Resources"]["Blobs"]["Properties"]
    assert template["Resources"]["Metadata"]["Properties"] == full["Resources"]["Metadata"]["Properties"]
    # A table retained by a version without the sweep index is imported as it is; the update adds it.
    older = import_template(full)["Resources"]["Metadata"]["Properties"]
    assert "GlobalSecondaryIndexes" not in older
    assert [a["AttributeName"] for a in older["AttributeDefinitions"]] == ["pk", "sk"]
    for number, each in enumerate((template, import_template(full))):
        path = tmp_path / f"import{number}.json"
        path.write_text(json.dumps(each))
        # Parameters the two resources do not use are fine for CloudFormation (cfn-lint warns: W2001).
        assert {m.rule.id for m in lint_file(path)} <= {"W2001"}


@pytest.fixture
def names(aws: AwsClients, request: pytest.FixtureRequest) -> dict[str, str]:
    suffix = request.node.name.replace("_", "-")[-30:].strip("-").lower()
    return {"BucketName": f"left-{suffix}", "TableName": f"left-{suffix}"}


def test_a_stage_removed_earlier_gets_its_bucket_and_table_back(aws: AwsClients, names: dict[str, str]) -> None:
    assert retained_leftovers(aws.s3, aws.dynamodb, names) == []
    aws.s3.create_bucket(Bucket=names["BucketName"])
    with pytest.raises(SystemExit, match="without its partner"):
        retained_leftovers(aws.s3, aws.dynamodb, names)
    aws.dynamodb.create_table(TableName=names["TableName"], BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    found = retained_leftovers(aws.s3, aws.dynamodb, names)
    assert {(r["LogicalResourceId"], json.dumps(r["ResourceIdentifier"])) for r in found} == {
        ("Blobs", json.dumps({"BucketName": names["BucketName"]})),
        ("Metadata", json.dumps({"TableName": names["TableName"]}))}

    class RecordingStacks:
        def __init__(self) -> None:
            self.deployed: list[tuple[dict[str, str], Any]] = []

        def parameters(self, name: str) -> dict[str, str]:
            return {}

        def deploy(self, name: str, template: dict[str, str], parameters: dict[str, str],
                   import_resources: Any = None) -> dict[str, str]:
            self.deployed.append((template, import_resources))
            return OUTPUTS

    stacks = RecordingStacks()
    text = (REPO / TEMPLATE).read_text()
    storage = deploy_storage(stacks, aws.s3, aws.dynamodb, text, templates.load(text), "prod",  # type: ignore[arg-type]
                             {**names, "DomainName": "r.example.com"})
    (imported, adopted), (full, nothing) = stacks.deployed
    assert adopted == found and set(json.loads(imported["TemplateBody"])["Resources"]) == set(RETAINED)
    # The table left behind has no index: imported without, for the update to add it.
    assert "GlobalSecondaryIndexes" not in json.loads(imported["TemplateBody"])["Resources"]["Metadata"]["Properties"]
    assert full == {"TemplateBody": text} and nothing is None
    assert storage.bucket == STORAGE.bucket


def test_renaming_the_storage_of_a_deployed_stage_is_refused(aws: AwsClients) -> None:
    class Deployed:
        def parameters(self, name: str) -> dict[str, str]:
            return {"BucketName": "old-bucket", "TableName": "berth-prod"}

    with pytest.raises(SystemExit, match="empty registry"):
        deploy_storage(Deployed(), aws.s3, aws.dynamodb, "", {}, "prod",  # type: ignore[arg-type]
                       {"BucketName": "new-bucket", "TableName": "berth-prod"})


def test_artifacts_go_to_the_blob_bucket_and_old_ones_are_pruned(
        uploaded: tuple[str, str, dict[str, Any]], aws: AwsClients) -> None:
    url, bundle, template = uploaded
    assert url.startswith(aws.s3.meta.endpoint_url) and f"/{STORAGE.bucket}/deploy/prod/" in url
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    assert {json.dumps(f["Properties"]["CodeUri"]) for f in functions} == {
        json.dumps({"Bucket": STORAGE.bucket, "Key": bundle})}
    aws.s3.put_object(Bucket=STORAGE.bucket, Key="deploy/prod/older.zip", Body=b"old")
    aws.s3.put_object(Bucket=STORAGE.bucket, Key="deploy/dev/other-stage.zip", Body=b"dev")
    aws.s3.put_object(Bucket=STORAGE.bucket, Key="blobs/keep-me", Body=b"data")
    try:
        assert artifacts.prune(aws.s3, STORAGE.bucket, "prod", keep={bundle}) == 2  # older.zip, the template
        left = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=STORAGE.bucket)["Contents"]}
        assert left == {bundle, "deploy/dev/other-stage.zip", "blobs/keep-me"}
    finally:
        aws.s3.delete_objects(Bucket=STORAGE.bucket, Delete={"Objects": [
            {"Key": "deploy/dev/other-stage.zip"}, {"Key": "blobs/keep-me"}]})


# ---- CloudFormation, stubbed -------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def stack(status: str, outputs: dict[str, str] | None = None) -> dict[str, Any]:
    return {"Stacks": [{"StackName": "berth-prod", "StackStatus": status, "CreationTime": NOW,
                        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in (outputs or {}).items()]}]}


def event(number: int, resource: str, status: str) -> dict[str, Any]:
    return {"EventId": f"e{number}", "StackId": "id", "StackName": "berth-prod", "Timestamp": NOW,
            "LogicalResourceId": resource, "ResourceStatus": status}


def missing() -> dict[str, Any]:
    return {"service_error_code": "ValidationError", "service_message": "Stack with id berth-prod does not exist"}


@pytest.fixture
def cloudformation() -> Any:
    import boto3

    return boto3.client("cloudformation", region_name=REGION)


def test_a_new_stack_is_created_through_a_change_set(cloudformation: Any) -> None:
    said: list[str] = []
    with Stubber(cloudformation) as stub:
        stub.add_client_error("describe_stacks", **missing())
        stub.add_response("create_change_set", {"Id": "cs-1"}, {
            "StackName": "berth-prod", "ChangeSetName": ANY, "ChangeSetType": "CREATE",
            "TemplateURL": "https://s3/b/t.json", "Parameters": [{"ParameterKey": "A", "ParameterValue": "1"}],
            "Capabilities": ["CAPABILITY_IAM"]})
        stub.add_response("describe_change_set", {"Status": "CREATE_PENDING"}, {"ChangeSetName": "cs-1"})
        stub.add_response("describe_change_set", {"Status": "CREATE_COMPLETE"}, {"ChangeSetName": "cs-1"})
        stub.add_client_error("describe_stack_events", **missing())
        stub.add_response("execute_change_set", {}, {"ChangeSetName": "cs-1"})
        stub.add_response("describe_stacks", stack("CREATE_IN_PROGRESS"), {"StackName": "berth-prod"})
        stub.add_response("describe_stack_events", {"StackEvents": [event(1, "Api", "CREATE_IN_PROGRESS")]},
                          {"StackName": "berth-prod"})
        stub.add_response("describe_stacks", stack("CREATE_COMPLETE"), {"StackName": "berth-prod"})
        stub.add_response("describe_stack_events", {"StackEvents": [
            event(2, "Api", "CREATE_COMPLETE"), event(1, "Api", "CREATE_IN_PROGRESS")]}, {"StackName": "berth-prod"})
        stub.add_response("describe_stacks", stack("CREATE_COMPLETE", {"Url": "https://x"}),
                          {"StackName": "berth-prod"})
        outputs = Stacks(cloudformation, said.append, sleep=lambda _: None).deploy(
            "berth-prod", {"TemplateURL": "https://s3/b/t.json"}, {"A": "1"}, ("CAPABILITY_IAM",))
        stub.assert_no_pending_responses()
    assert outputs == {"Url": "https://x"}
    assert said == ["berth-prod: create started", "  Api: CREATE_IN_PROGRESS", "  Api: CREATE_COMPLETE",
                    "berth-prod: CREATE_COMPLETE"]


def test_nothing_to_change_is_no_failure(cloudformation: Any) -> None:
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": "berth-prod"})
        stub.add_response("create_change_set", {"Id": "cs-2"}, {
            "StackName": "berth-prod", "ChangeSetName": ANY, "ChangeSetType": "UPDATE", "TemplateBody": "{}",
            "Parameters": [], "Capabilities": []})
        stub.add_response("describe_change_set", {
            "Status": "FAILED", "StatusReason": "The submitted information didn't contain changes."},
            {"ChangeSetName": "cs-2"})
        stub.add_response("delete_change_set", {}, {"ChangeSetName": "cs-2"})
        stub.add_response("describe_stacks", stack("UPDATE_COMPLETE", {"A": "b"}), {"StackName": "berth-prod"})
        assert Stacks(cloudformation, lambda _: None).deploy("berth-prod", {"TemplateBody": "{}"}) == {"A": "b"}
        stub.assert_no_pending_responses()


def test_a_rolled_back_update_is_a_failure(cloudformation: Any) -> None:
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"), {"StackName": "berth-prod"})
        stub.add_response("create_change_set", {"Id": "cs-3"}, None)
        stub.add_response("describe_change_set", {"Status": "CREATE_COMPLETE"}, {"ChangeSetName": "cs-3"})
        stub.add_response("describe_stack_events", {"StackEvents": [event(1, "berth-prod", "UPDATE_COMPLETE")]},
                          {"StackName": "berth-prod"})
        stub.add_response("execute_change_set", {}, {"ChangeSetName": "cs-3"})
        stub.add_response("describe_stacks", stack("UPDATE_ROLLBACK_COMPLETE"), {"StackName": "berth-prod"})
        failed = {**event(2, "APIHandler", "UPDATE_FAILED"), "ResourceStatusReason": "AccessDenied"}
        stub.add_response("describe_stack_events", {"StackEvents": [failed, event(1, "berth-prod", "UPDATE_COMPLETE")]},
                          {"StackName": "berth-prod"})
        said: list[str] = []
        with pytest.raises(StackFailed, match="UPDATE_ROLLBACK_COMPLETE"):
            Stacks(cloudformation, said.append).deploy("berth-prod", {"TemplateBody": "{}"})
    assert "  APIHandler: UPDATE_FAILED  AccessDenied" in said


def test_storage_outputs_become_the_registry_environment() -> None:
    from berth.deploy.storage import Storage

    storage = Storage.from_outputs(OUTPUTS)
    assert storage == replace(STORAGE, domain="registry.example.com")
    assert set(storage.environment()) == {"BERTH_BUCKET", "BERTH_TABLE", "BERTH_SIGNING_SECRET_ID",
                                          "BERTH_VERIFY_QUEUE", "BERTH_VERIFY_QUEUE_URL", "BERTH_PUBLIC_URL",
                                          "BERTH_CACHE_QUEUE", "BERTH_CACHE_QUEUE_URL"}


def test_up_runs_every_step_in_order(tmp_path: Path, aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make deploy` with CloudFormation stood in (moto's cannot create these stacks): the
    storage stack's outputs reach the config and the package, the bundle reaches S3, the app
    stack gets the uploaded template, older bundles go, and the last words say how to log in."""
    from berth.deploy.stage import up

    project = project_copy(tmp_path / "project")
    (project / "infra").mkdir()
    (project / TEMPLATE).write_text((REPO / TEMPLATE).read_text())
    config = ChaliceConfig(project)
    config.data["stages"]["prod"]["environment_variables"].update({"BERTH_BUCKET": "up-test", "BERTH_TABLE": "up-test"})
    config.save()
    if STORAGE.bucket not in {b["Name"] for b in aws.s3.list_buckets()["Buckets"]}:
        aws.s3.create_bucket(Bucket=STORAGE.bucket)
    aws.s3.put_object(Bucket=STORAGE.bucket, Key="deploy/prod/from-last-time.zip", Body=b"old")
    deployed: list[tuple[str, dict[str, str], dict[str, str] | None, tuple[str, ...]]] = []

    def deploy(self: Stacks, name: str, template: dict[str, str], parameters: dict[str, str] | None = None,
               capabilities: tuple[str, ...] = (), import_resources: Any = None) -> dict[str, str]:
        deployed.append((name, template, parameters, capabilities))
        return OUTPUTS if name.endswith("-storage") else {"EndpointURL": "https://abc.execute-api/api/"}

    monkeypatch.setattr(Stacks, "deploy", deploy)
    monkeypatch.setattr(Stacks, "parameters", lambda self, name: {})
    said: list[str] = []
    up(project, "prod", REGION, StackChoices("registry.example.com", "Z0123456789ABC"), said.append)

    (storage_name, storage_template, parameters, _), (app_name, app_template, _, capabilities) = deployed
    assert (storage_name, app_name) == ("berth-prod-storage", "berth-prod")
    assert storage_template == {"TemplateBody": (REPO / TEMPLATE).read_text()}
    assert parameters is not None and parameters["BucketName"] == "up-test" and parameters["HostedZoneId"]
    assert set(capabilities) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert ChaliceConfig(project).environment("prod")["BERTH_SIGNING_SECRET_ID"] == STORAGE.secret_arn
    left = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=STORAGE.bucket, Prefix="deploy/prod/")["Contents"]}
    (bundle,) = left
    template_key = app_template["TemplateURL"].split(f"/{STORAGE.bucket}/", 1)[1]
    assert template_key not in left  # CloudFormation has read it; only the bundle stays
    assert said[-1].startswith("Registry: https://registry.example.com")
    assert "docker login registry.example.com" in said[-1] and "berth user add admin" in said[-1]
    assert "berth doctor https://registry.example.com --user admin --password-stdin" in said[-1]
    aws.s3.delete_object(Bucket=STORAGE.bucket, Key=bundle)


def test_missing_storage_outputs_are_named_with_the_reason() -> None:
    from berth.deploy.storage import Storage

    partial = {k: v for k, v in OUTPUTS.items() if k not in ("VerifyQueueUrl", "VerifyDeadLetterQueueUrl")}
    with pytest.raises(SystemExit) as refused:
        Storage.from_outputs(partial, "berth-prod-storage")
    message = str(refused.value)
    assert "berth-prod-storage lacks the output(s) VerifyQueueUrl, VerifyDeadLetterQueueUrl" in message
    assert "make deploy" in message and "failed" in message


def test_a_deletion_refused_while_acm_calls_the_certificate_in_use_is_tried_again(cloudformation: Any) -> None:
    from berth.deploy.stage import CERTIFICATE_WAIT, certificate_in_use

    in_use = {**event(2, "Certificate", "DELETE_FAILED"),
              "ResourceStatusReason": "Certificate arn:aws:acm:us-east-1:1:certificate/x in use. (Service: Acm)"}
    slept: list[float] = []
    said: list[str] = []
    with Stubber(cloudformation) as stub:
        for attempt in range(2):
            stub.add_response("describe_stacks", stack("DELETE_FAILED" if attempt else "UPDATE_COMPLETE"),
                              {"StackName": "berth-prod"})
            stub.add_response("describe_stack_events", {"StackEvents": [event(1, "x", "UPDATE_COMPLETE")]},
                              {"StackName": "berth-prod"})
            stub.add_response("delete_stack", {}, {"StackName": "berth-prod"})
            if attempt == 0:
                stub.add_response("describe_stacks", stack("DELETE_FAILED"), {"StackName": "berth-prod"})
                stub.add_response("describe_stack_events", {"StackEvents": [in_use, event(1, "x", "UPDATE_COMPLETE")]},
                                  {"StackName": "berth-prod"})
            else:
                stub.add_client_error("describe_stacks", **missing())
                stub.add_client_error("describe_stack_events", **missing())
        stacks = Stacks(cloudformation, said.append, sleep=slept.append)
        stacks.delete("berth-prod", retry=certificate_in_use(said.append))
        stub.assert_no_pending_responses()
    assert slept == [CERTIFICATE_WAIT]
    assert any("ACM still calls the certificate in use" in line for line in said)
    assert said[-1] == "berth-prod: DELETE_COMPLETE"


def test_other_failed_deletions_are_not_retried() -> None:
    from berth.deploy.stage import certificate_in_use

    retry = certificate_in_use(lambda _: None)
    assert retry(StackFailed("berth-prod: DELETE_FAILED", ("Bucket not empty",))) is None
    assert retry(StackFailed("berth-prod: DELETE_FAILED", ("Certificate x is in use.",))) is not None


def test_down_removes_the_artifacts_even_without_storage_outputs(tmp_path: Path, aws: AwsClients,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage stack is gone or failed and lists no outputs: the bucket named in the stage's
    config still loses the stage's deployment artifacts, and both stacks are deleted."""
    from berth.deploy.stage import down

    project = project_copy(tmp_path / "project")
    config = ChaliceConfig(project)
    config.data["stages"]["prod"]["environment_variables"].update({"BERTH_BUCKET": "down-test",
                                                                   "BERTH_TABLE": "down-test"})
    config.save()
    aws.s3.create_bucket(Bucket="down-test")
    aws.s3.put_object(Bucket="down-test", Key="deploy/prod/bundle.zip", Body=b"zip")
    aws.s3.put_object(Bucket="down-test", Key="blobs/an-image-layer", Body=b"kept")
    deleted: list[tuple[str, bool]] = []
    monkeypatch.setattr(Stacks, "outputs", lambda self, name: {})
    monkeypatch.setattr(Stacks, "delete", lambda self, name, retry=None: deleted.append((name, retry is not None)))
    said: list[str] = []
    down(project, "prod", REGION, said.append)
    assert deleted == [("berth-prod", False), ("berth-prod-storage", True)]
    assert [o["Key"] for o in aws.s3.list_objects_v2(Bucket="down-test")["Contents"]] == ["blobs/an-image-layer"]
    assert "Kept: bucket down-test and table down-test" in said[-1]


def test_up_waits_out_a_queue_name_sqs_still_holds(tmp_path: Path, aws: AwsClients,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Deployed moments after `make destroy`: the storage stack fails on the verify queue's name,
    so `make deploy` waits for SQS to release it and deploys the storage stack again."""
    from berth.deploy import stage as stage_module

    attempts: list[str] = []

    def storage(*args: Any) -> Any:
        attempts.append("storage")
        if len(attempts) == 1:
            raise StackFailed("berth-prod-storage: ROLLBACK_COMPLETE", (
                "Resource handler returned message: \"You must wait 60 seconds after deleting a queue before you can "
                "create another with the same name. (Service: Sqs, Status Code: 400)\" (AWS.SimpleQueueService."
                "QueueDeletedRecently)",))
        raise RuntimeError("deployed again")  # far enough: what follows is test_up_runs_every_step_in_order's

    monkeypatch.setattr(stage_module, "deploy_storage", storage)
    monkeypatch.setattr(Stacks, "parameters", lambda self, name: {})
    project = project_copy(tmp_path / "project")
    (project / "infra").mkdir()
    (project / TEMPLATE).write_text((REPO / TEMPLATE).read_text())
    slept: list[float] = []
    said: list[str] = []
    with pytest.raises(RuntimeError, match="deployed again"):
        stage_module.up(project, "prod", REGION, StackChoices("registry.example.com", "Z0123456789ABC"),
                        said.append, slept.append)
    assert attempts == ["storage", "storage"] and slept == [stage_module.QUEUE_NAME_WAIT]
    assert "SQS keeps a deleted queue's name for 60 s" in said[-1]
