"""The functions in the packaged template: the configured runtime, memory and timeout, a role
each, their triggers (hourly schedules, the verify queue), and a template CloudFormation
accepts (cfn-lint, before and after the SAM transform)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from berth.deploy.policies import FUNCTIONS
from tests.deploy.conftest import STAGE, STORAGE, Packaged

# Chalice's logical ids: the API handler is APIHandler, the others are CamelCase of their names.
LOGICAL = {"api_handler": "APIHandler", "credentials": "Credentials", "verify_blob": "VerifyBlob",
           "purge_uploads": "PurgeUploads", "collect_garbage": "CollectGarbage", "copy_blob": "CopyBlob",
           "collect_cache": "CollectCache"}


def lint(path: Path) -> list[str]:
    from cfnlint.api import lint_file

    return [str(match) for match in lint_file(path)]


def test_every_function_runs_the_configured_runtime_memory_and_timeout(packaged: Packaged) -> None:
    functions = packaged.of_type("AWS::Serverless::Function")
    assert set(functions) == set(LOGICAL.values())
    # Each sized on purpose: a new function without an entry would get Chalice's 128 MB and 60 s.
    assert set(packaged.config.data["lambda_functions"]) == set(LOGICAL)
    for function, logical in LOGICAL.items():
        properties = functions[logical]["Properties"]
        assert properties["Runtime"] == packaged.config.runtime, function
        assert properties["MemorySize"] == packaged.config.function_setting(STAGE, function, "lambda_memory_size")
        assert properties["Timeout"] == packaged.config.function_setting(STAGE, function, "lambda_timeout")
    assert packaged.config.runtime in ("python3.12", "python3.13")


def test_each_function_has_a_role_of_its_own_with_its_policy(packaged: Packaged) -> None:
    functions = packaged.of_type("AWS::Serverless::Function")
    roles = [functions[LOGICAL[f]]["Properties"]["Role"]["Fn::GetAtt"][0] for f in FUNCTIONS]
    assert len(set(roles)) == len(FUNCTIONS)
    for function, role in zip(FUNCTIONS, roles, strict=True):
        (policy,) = packaged.resources[role]["Properties"]["Policies"]
        written = json.loads((packaged.project / ".chalice" / f"policy-{STAGE}-{function}.json").read_text())
        assert policy["PolicyDocument"] == written


def test_the_environment_names_the_storage(packaged: Packaged) -> None:
    for function in packaged.of_type("AWS::Serverless::Function").values():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["BERTH_BUCKET"] == STORAGE.bucket and env["BERTH_TABLE"] == STORAGE.table
        assert env["BERTH_SIGNING_SECRET_ID"] == STORAGE.secret_arn
        assert env["BERTH_VERIFY_QUEUE_URL"] == STORAGE.queue_url
        assert env["BERTH_PUBLIC_URL"] == "https://registry.example.com"
        assert env["POWERTOOLS_SERVICE_NAME"] == f"berth-{STAGE}" and env["POWERTOOLS_METRICS_NAMESPACE"]


def test_lifecycle_jobs_run_hourly(packaged: Packaged) -> None:
    functions = packaged.of_type("AWS::Serverless::Function")
    for logical in ("PurgeUploads", "CollectGarbage", "CollectCache"):
        (event,) = functions[logical]["Properties"]["Events"].values()
        assert event == {"Type": "Schedule", "Properties": {"Schedule": "rate(1 hour)"}}


def test_verify_blob_reads_the_queue_s3_notifies(packaged: Packaged) -> None:
    """S3 → the storage stack's queue (infra/registry.yaml) → verify_blob, one message at a time."""
    functions = packaged.of_type("AWS::Serverless::Function")
    (event,) = functions["VerifyBlob"]["Properties"]["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["BatchSize"] == 1
    queue = event["Properties"]["Queue"]["Fn::Sub"]
    assert queue == f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{STORAGE.queue_name}"


def test_copy_blob_reads_the_cache_queue(packaged: Packaged) -> None:
    """The API → the storage stack's cache queue → copy_blob, one message at a time (docs/cache.md)."""
    functions = packaged.of_type("AWS::Serverless::Function")
    (event,) = functions["CopyBlob"]["Properties"]["Events"].values()
    assert event["Type"] == "SQS" and event["Properties"]["BatchSize"] == 1
    queue = event["Properties"]["Queue"]["Fn::Sub"]
    assert queue == f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{STORAGE.cache_queue_name}"
    env = functions["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert env["BERTH_CACHE_QUEUE_URL"] == STORAGE.cache_queue_url


def test_log_groups_belong_to_functions_and_expire(packaged: Packaged) -> None:
    groups = packaged.of_type("AWS::Logs::LogGroup")
    assert len(groups) == len(FUNCTIONS)
    for group in groups.values():
        name = group["Properties"]["LogGroupName"]["Fn::Sub"]
        assert name.removeprefix("/aws/lambda/${").removesuffix("}") in packaged.resources, name
        assert group["Properties"]["RetentionInDays"] == packaged.config.data["log_retention_in_days"]


def test_the_packaged_template_passes_cfn_lint(packaged: Packaged) -> None:
    assert lint(packaged.path) == []


def test_the_template_cloudformation_gets_passes_cfn_lint(translated: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "translated.json"
    path.write_text(json.dumps(translated))
    assert lint(path) == []
    mappings = [r["Properties"] for r in translated["Resources"].values()
                if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert sorted(m["FunctionName"]["Ref"] for m in mappings) == ["CopyBlob", "VerifyBlob"]
