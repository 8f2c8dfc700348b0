"""Create the bucket and table the registry expects (local mode and tests; deployed, infra/ does)."""

from __future__ import annotations

from typing import Any

# The lifecycle jobs' sparse index (chalicelib/storage/keys.py): blob and upload records that
# carry `sweep`, by their `touched`.
SWEEP_INDEX = {
    "IndexName": "sweep",
    "KeySchema": [{"AttributeName": "sweep", "KeyType": "HASH"}, {"AttributeName": "touched", "KeyType": "RANGE"}],
    "Projection": {"ProjectionType": "ALL"},
}


def create_table(dynamodb: Any, name: str) -> None:
    """As infra/registry.yaml defines it (tests/unit/test_infra.py compares the two)."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"},
                              {"AttributeName": "sweep", "AttributeType": "S"},
                              {"AttributeName": "touched", "AttributeType": "N"}],
        GlobalSecondaryIndexes=[SWEEP_INDEX],
        BillingMode="PAY_PER_REQUEST",
    )


def create_bucket(s3: Any, name: str) -> None:
    s3.create_bucket(Bucket=name)


def provision(s3: Any, dynamodb: Any, bucket: str, table: str) -> None:
    create_bucket(s3, bucket)
    create_table(dynamodb, table)


def provision_verify_queue(s3: Any, sqs: Any, bucket: str, queue: str) -> str:
    """The queue S3 tells about completed direct uploads (objects under `direct/`), as the
    deployed stack wires it. Returns the queue's URL."""
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [{
        "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "direct/"}]}},
    }]})
    return str(url)
