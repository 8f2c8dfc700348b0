"""infra/registry.yaml: valid CloudFormation, and the storage the code expects."""

from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "registry.yaml"


def test_template_passes_cfn_lint() -> None:
    from cfnlint.api import lint_file

    assert [str(match) for match in lint_file(TEMPLATE)] == []


def test_bucket_is_private_encrypted_and_aborts_stale_multipart_uploads() -> None:
    from cfnlint.decode import decode_str

    template, errors = decode_str(TEMPLATE.read_text())
    assert not errors
    bucket = template["Resources"]["Blobs"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert "VersioningConfiguration" not in bucket  # deleted blobs must stop costing money
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled" and "AbortIncompleteMultipartUpload" in rule
    table = template["Resources"]["Metadata"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [("pk", "HASH"), ("sk", "RANGE")]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}


def _template() -> dict:
    from cfnlint.decode import decode_str

    template, errors = decode_str(TEMPLATE.read_text())
    assert not errors
    return dict(template)


def test_direct_uploads_reach_the_verify_queue() -> None:
    """S3 notifies the queue of objects completed under direct/, and the queue lets it."""
    resources = _template()["Resources"]
    (notification,) = resources["Blobs"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"] == {"Fn::GetAtt": ["VerifyQueue", "Arn"]}
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "direct/"}]
    assert resources["Blobs"]["DependsOn"] == "VerifyQueuePolicy"  # S3 checks it may send when configured
    (statement,) = resources["VerifyQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    source = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert source == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"}
    queue = resources["VerifyQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["VerifyDeadLetters", "Arn"]}
    assert queue["SqsManagedSseEnabled"] is True  # SSE-KMS would need a key policy for S3


def test_a_dead_letter_raises_an_alarm_to_the_given_topic_only() -> None:
    template = _template()
    alarm = template["Resources"]["VerifyDeadLettersAlarm"]
    assert alarm["Condition"] == "HasAlarmTopic"
    assert template["Conditions"]["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    properties = alarm["Properties"]
    assert properties["Namespace"] == "AWS/SQS" and properties["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert properties["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["VerifyDeadLetters",
                                                                                       "QueueName"]}}]
    assert (properties["ComparisonOperator"], properties["Threshold"]) == ("GreaterThanThreshold", 0)
    assert properties["AlarmActions"] == [{"Ref": "AlarmTopicArn"}]
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""


def test_the_queue_outwaits_verify_blob() -> None:
    """Lambda refuses an SQS trigger whose queue hides messages for less than the function's
    timeout; make deploy passes six times it."""
    from pathlib import Path

    from berth.deploy.config import ChaliceConfig
    from berth.deploy.storage import visibility_timeout

    config = ChaliceConfig(Path(__file__).resolve().parents[2])
    for stage in config.data["stages"]:
        timeout = config.function_setting(stage, "verify_blob", "lambda_timeout")
        assert int(visibility_timeout(timeout)) >= 6 * timeout
    parameter = _template()["Parameters"]["VerifyVisibilityTimeout"]
    assert parameter["Default"] >= 6 * config.function_setting("prod", "verify_blob", "lambda_timeout")


def test_the_cache_queue_outwaits_copy_blob_and_has_a_dead_letter_queue() -> None:
    from pathlib import Path

    from berth.deploy.config import ChaliceConfig

    config = ChaliceConfig(Path(__file__).resolve().parents[2])
    template = _template()
    assert template["Parameters"]["CacheVisibilityTimeout"]["Default"] >= 6 * config.function_setting(
        "prod", "copy_blob", "lambda_timeout")
    queue = template["Resources"]["CacheQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == {"Ref": "CacheVisibilityTimeout"}
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["CacheDeadLetters", "Arn"]}


def test_the_signing_secret_is_generated_and_everything_the_app_needs_is_an_output() -> None:
    from berth.deploy.storage import Storage

    template = _template()
    secret = template["Resources"]["SigningSecret"]["Properties"]
    assert secret["GenerateSecretString"]["PasswordLength"] >= 32 and "Name" not in secret
    storage = Storage.from_outputs({key: key for key in template["Outputs"]})
    assert storage.secret_arn == "SigningSecretArn" and storage.queue_url == "VerifyQueueUrl"
    assert storage.cache_queue_url == "CacheQueueUrl" and storage.cache_queue_arn == "CacheQueueArn"
    assert template["Resources"]["Metadata"]["Properties"]["DeletionProtectionEnabled"] is True


def test_our_yaml_reader_agrees_with_cfn_lint() -> None:
    from berth.deploy.templates import load

    assert load(TEMPLATE.read_text()) == _template()


def test_the_local_table_is_the_deployed_one() -> None:
    """berth/local/provision.py creates what the stack does: keys, attributes, the sweep index."""
    from berth.local.provision import create_table

    made: dict = {}
    create_table(type("Recorder", (), {"create_table": lambda self, **kw: made.update(kw)})(), "t")
    table = _template()["Resources"]["Metadata"]["Properties"]
    for key in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "BillingMode"):
        assert made[key] == table[key], key
