"""berth/local/motoguard.py, in process (tests/conftest.py installs it, as the local mode does):
a DynamoDB transaction whose condition fails never undoes another request's commit, and one
whose write fails undoes only its own writes; S3 says when a multipart upload started."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from moto.dynamodb.models import DynamoDBBackend

from berth.local.provision import create_table
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.table import from_item, to_item

PAUSE_SECONDS = 1.0


@pytest.fixture
def table(aws: AwsClients) -> str:
    name = f"guard-{uuid.uuid4().hex[:12]}"
    create_table(aws.dynamodb, name)
    return name


def stored(aws: AwsClients, table: str, pk: str) -> dict[str, Any] | None:
    item = aws.dynamodb.get_item(TableName=table, Key=to_item({"pk": pk, "sk": "x"})).get("Item")
    return from_item(item) if item else None


def test_a_cancelled_transaction_leaves_a_write_committed_meanwhile(
        aws: AwsClients, table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The transaction pauses where it reads the item its failing condition is about, and
    lets another request commit in the meantime. moto alone restores the copy of the table it
    took before: the other request's acknowledged write is gone."""
    aws.dynamodb.put_item(TableName=table, Item=to_item({"pk": "taken", "sk": "x"}))
    inside, committed = threading.Event(), threading.Event()
    transaction_thread: list[threading.Thread] = []
    read = DynamoDBBackend.get_item

    def pausing_read(backend: Any, table_name: str, key: dict[str, Any], *args: Any) -> Any:
        if threading.current_thread() in transaction_thread and key["pk"] == {"S": "taken"}:
            inside.set()
            committed.wait(PAUSE_SECONDS)  # with requests serialised, the other one waits instead
        return read(backend, table_name, key, *args)

    monkeypatch.setattr(DynamoDBBackend, "get_item", pausing_read)
    outcome: list[str] = []

    def transaction() -> None:
        try:
            aws.dynamodb.transact_write_items(TransactItems=[
                {"Put": {"TableName": table, "Item": to_item({"pk": "first", "sk": "x"})}},
                {"Put": {"TableName": table, "Item": to_item({"pk": "taken", "sk": "x"}),
                         "ConditionExpression": "attribute_not_exists(pk)"}},
            ])
            outcome.append("committed")
        except aws.dynamodb.exceptions.TransactionCanceledException:
            outcome.append("cancelled")

    worker = threading.Thread(target=transaction)
    transaction_thread.append(worker)
    worker.start()
    assert inside.wait(10)
    aws.dynamodb.put_item(TableName=table, Item=to_item({"pk": "meanwhile", "sk": "x", "n": 1}))
    committed.set()
    worker.join(10)

    assert outcome == ["cancelled"]
    assert stored(aws, table, "meanwhile") == {"pk": "meanwhile", "sk": "x", "n": 1}
    assert stored(aws, table, "first") is None


def test_a_transaction_whose_write_fails_undoes_only_its_own_writes(aws: AwsClients, table: str) -> None:
    """Conditions hold, but the second update adds a number to a string: DynamoDB refuses the
    whole transaction, and the first write must not stay."""
    db = aws.dynamodb
    db.put_item(TableName=table, Item=to_item({"pk": "kept", "sk": "x", "n": 5}))
    db.put_item(TableName=table, Item=to_item({"pk": "text", "sk": "x", "n": "five"}))
    with pytest.raises(db.exceptions.ClientError) as refused:
        db.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": to_item({"pk": "kept", "sk": "x"}), "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": to_item({":one": 1})}},
            {"Put": {"TableName": table, "Item": to_item({"pk": "new", "sk": "x"})}},
            {"Update": {"TableName": table, "Key": to_item({"pk": "text", "sk": "x"}), "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": to_item({":one": 1})}},
        ])
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert stored(aws, table, "kept") == {"pk": "kept", "sk": "x", "n": 5}
    assert stored(aws, table, "new") is None
    assert stored(aws, table, "text") == {"pk": "text", "sk": "x", "n": "five"}


def test_a_cancelled_transaction_reports_each_reason_and_writes_nothing(aws: AwsClients, table: str) -> None:
    db = aws.dynamodb
    db.put_item(TableName=table, Item=to_item({"pk": "old", "sk": "x", "v": 1}))
    with pytest.raises(db.exceptions.TransactionCanceledException) as cancelled:
        db.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": to_item({"pk": "new", "sk": "x"})}},
            {"Delete": {"TableName": table, "Key": to_item({"pk": "old", "sk": "x"}),
                        "ConditionExpression": "v = :two", "ExpressionAttributeValues": to_item({":two": 2}),
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
        ])
    reasons = cancelled.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]
    assert from_item(reasons[1]["Item"]) == {"pk": "old", "sk": "x", "v": 1}
    assert stored(aws, table, "new") is None and stored(aws, table, "old") is not None


def test_open_multipart_uploads_are_listed_with_when_they_started(aws: AwsClients) -> None:
    """The purge aborts a multipart upload no record names only once it is older than any
    request that could still record it; moto alone dates every upload 2010-11-10."""
    bucket = f"guard-{uuid.uuid4().hex[:12]}"
    aws.s3.create_bucket(Bucket=bucket)
    before = time.time()
    started = aws.s3.create_multipart_upload(Bucket=bucket, Key="blobs/a")["UploadId"]
    aws.s3.create_multipart_upload(Bucket=bucket, Key="direct/b")
    (listed,) = aws.s3.list_multipart_uploads(Bucket=bucket, Prefix="blobs/")["Uploads"]
    assert (listed["Key"], listed["UploadId"]) == ("blobs/a", started)
    assert before - 1 <= listed["Initiated"].timestamp() <= time.time()
    aws.s3.abort_multipart_upload(Bucket=bucket, Key="blobs/a", UploadId=started)
    assert [u["Key"] for u in aws.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == ["direct/b"]


def test_a_transaction_sent_again_with_its_token_succeeds_without_running_twice(aws: AwsClients, table: str) -> None:
    """botocore gives every TransactWriteItems a ClientRequestToken and sends the same one when
    it retries after a lost answer: DynamoDB answers the retry with the first run's success.
    moto alone runs it again: a count goes up twice, a conditional write fails its own condition."""
    add = {"Update": {"TableName": table, "Key": to_item({"pk": "count", "sk": "x"}),
                      "UpdateExpression": "ADD n :one", "ConditionExpression": "attribute_not_exists(done)",
                      "ExpressionAttributeValues": to_item({":one": 1})}}
    token = uuid.uuid4().hex
    for _ in range(3):
        aws.dynamodb.transact_write_items(TransactItems=[add], ClientRequestToken=token)
    assert stored(aws, table, "count") == {"pk": "count", "sk": "x", "n": 1}
    aws.dynamodb.transact_write_items(TransactItems=[add])  # a new token: a new transaction
    assert stored(aws, table, "count") == {"pk": "count", "sk": "x", "n": 2}
    other = {"Update": {**add["Update"], "ExpressionAttributeValues": to_item({":one": 5})}}
    with pytest.raises(aws.dynamodb.exceptions.IdempotentParameterMismatchException):
        aws.dynamodb.transact_write_items(TransactItems=[other], ClientRequestToken=token)
    assert stored(aws, table, "count") == {"pk": "count", "sk": "x", "n": 2}
