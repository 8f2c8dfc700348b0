"""Attacks on berth/local/motoguard.py's latest emulations (issue 14): the ten minutes of
ClientRequestTokens DynamoDB remembers, and the dates of S3's open multipart uploads. The
local mode must answer as AWS does, and its memory must follow what is stored."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from berth.local import motoguard
from berth.local.provision import create_table
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.table import from_item, to_item
from tests.helpers import MiB
from tests.local import LocalServer, local_server
from tests.local.test_local_durability import Moto, resident_bytes

MANIFEST_SIZED = 300 * 1024  # a manifest body kept inline in its item is up to 256 KiB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with local_server(tmp_path_factory.mktemp("attack-motoguard")) as running:
        yield running


@pytest.fixture
def table(aws: AwsClients) -> str:
    name = f"attack-{uuid.uuid4().hex[:12]}"
    create_table(aws.dynamodb, name)
    return name


def put(table: str, pk: str, **values: object) -> dict[str, object]:
    return {"Put": {"TableName": table, "Item": to_item({"pk": pk, "sk": "x", **values})}}


def test_remembered_tokens_do_not_hold_what_the_transactions_wrote(server: LocalServer) -> None:
    """Each transaction's token is remembered for ten minutes; what it wrote must not be. A
    push of a large manifest writes its body in a transaction: remembering whole requests
    kept ~1.2 MiB per such push, for pushes that store one item."""
    moto = Moto(server.port)
    table = f"tokens-{uuid.uuid4().hex[:8]}"
    create_table(moto.dynamodb, table)
    body = os.urandom(MANIFEST_SIZED)
    moto.dynamodb.transact_write_items(TransactItems=[put(table, "manifest", body=body)])
    before = resident_bytes(server.process.pid)
    for _ in range(200):  # the same manifest, pushed again and again
        moto.dynamodb.transact_write_items(TransactItems=[put(table, "manifest", body=body)])
    grown = resident_bytes(server.process.pid) - before
    # Remembering the requests grew it by ~250 MiB; what remains is the allocator's own churn.
    assert grown < 64 * MiB, f"{grown / MiB:.0f} MiB more after 200 transactions rewriting one item"


def test_a_token_whose_transaction_was_cancelled_runs_again(aws: AwsClients, table: str) -> None:
    """Only a transaction that succeeded is remembered: one cancelled by its condition has
    written nothing, and the same request sent again is judged again."""
    db = aws.dynamodb
    guarded = {"Put": {**put(table, "taken")["Put"], "ConditionExpression": "attribute_not_exists(pk)"}}
    db.put_item(TableName=table, Item=to_item({"pk": "taken", "sk": "x"}))
    token = uuid.uuid4().hex
    with pytest.raises(db.exceptions.TransactionCanceledException):
        db.transact_write_items(TransactItems=[guarded], ClientRequestToken=token)
    db.delete_item(TableName=table, Key=to_item({"pk": "taken", "sk": "x"}))
    db.transact_write_items(TransactItems=[guarded], ClientRequestToken=token)
    assert from_item(db.get_item(TableName=table, Key=to_item({"pk": "taken", "sk": "x"}))["Item"])["pk"] == "taken"


def test_a_token_is_new_again_after_ten_minutes(aws: AwsClients, table: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """After ten minutes DynamoDB treats a token as new: the request runs again."""
    db = aws.dynamodb
    count = {"Update": {"TableName": table, "Key": to_item({"pk": "count", "sk": "x"}),
                        "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": to_item({":one": 1})}}
    token = uuid.uuid4().hex
    db.transact_write_items(TransactItems=[count], ClientRequestToken=token)
    real = motoguard.time.monotonic
    monkeypatch.setattr(motoguard.time, "monotonic", lambda: real() + motoguard.IDEMPOTENCY_SECONDS + 1)
    db.transact_write_items(TransactItems=[count], ClientRequestToken=token)
    counted = from_item(db.get_item(TableName=table, Key=to_item({"pk": "count", "sk": "x"}))["Item"])
    assert counted["n"] == 2


def test_open_multipart_uploads_are_listed_with_their_initiator_and_owner(aws: AwsClients) -> None:
    """S3 lists each open multipart upload with who started it and who owns it (moto did
    too); dating the uploads must not take those away."""
    bucket = f"attack-{uuid.uuid4().hex[:12]}"
    aws.s3.create_bucket(Bucket=bucket)
    aws.s3.create_multipart_upload(Bucket=bucket, Key="blobs/a")
    (listed,) = aws.s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert listed["Initiator"]["ID"] and listed["Owner"]["ID"], listed


def test_listing_the_uploads_of_a_missing_bucket_says_no_such_bucket(aws: AwsClients) -> None:
    with pytest.raises(aws.s3.exceptions.NoSuchBucket):
        aws.s3.list_multipart_uploads(Bucket=f"attack-{uuid.uuid4().hex[:12]}")
