"""The DynamoDB table every store shares: item encoding, reads, queries, conditional writes.

One table, string keys `pk`/`sk` (layout in docs/architecture.md). Stores for each concern
(registry metadata, accounts) extend `Table`; nothing else talks to DynamoDB.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

from chalicelib.storage.clients import AwsClients

TRANSACTION_LIMIT = 100
FAILED = "ConditionalCheckFailed"
_CONFLICT_RETRIES = 8


@lru_cache(maxsize=1)
def _codec() -> tuple[Any, Any]:
    # Imported on first use: boto3 costs ~230 ms of cold start that GET /v2/ does not need.
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB's typed form of plain values; None values are left out."""
    serializer = _codec()[0]
    return {k: serializer.serialize(v) for k, v in values.items() if v is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3 Binary
        return bytes(value.value)
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    deserializer = _codec()[1]
    return {k: _plain(deserializer.deserialize(v)) for k, v in item.items()}


class Table:
    def __init__(self, clients: AwsClients, table: str) -> None:
        self._clients = clients
        self.table = table

    @property
    def _db(self) -> Any:
        return self._clients.dynamodb

    def _conditional(self, operation: str, **kwargs: Any) -> dict[str, Any] | None:
        """Run a conditional write; its answer, or None when its condition did not hold."""
        try:
            return dict(getattr(self._db, operation)(TableName=self.table, **kwargs))
        except self._db.exceptions.ConditionalCheckFailedException:
            return None

    def _conditionally(self, operation: str, **kwargs: Any) -> bool:
        """Run a conditional write; False when its condition did not hold."""
        return self._conditional(operation, **kwargs) is not None

    def _delete_existing(self, pk: str, sk: str) -> bool:
        """Delete the item; False when there was none."""
        return self._transact_one({"Delete": {"TableName": self.table, "Key": to_item({"pk": pk, "sk": sk}),
                                              "ConditionExpression": "attribute_exists(pk)"}})

    def _transact_one(self, action: dict[str, Any]) -> bool:
        """One conditional write, False when its condition did not hold. A transaction of one for
        its idempotency token: botocore's retry of a write whose answer was lost is then answered
        as the write was, where the write sent again would fail its own condition."""
        try:
            self._transact([action])
        except self._db.exceptions.TransactionCanceledException as error:
            if cancellation_reasons(error) == [FAILED]:
                return False
            raise
        return True

    def _put(self, values: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
        """A transaction's Put of an item, with its condition if any."""
        put: dict[str, Any] = {"TableName": self.table, "Item": to_item(values)}
        if condition:
            put["ConditionExpression"] = condition
        return {"Put": put}

    def _get(self, pk: str, sk: str, consistent: bool = False) -> dict[str, Any] | None:
        """The item; `consistent` where a write will depend on it (a default read may miss the
        latest writes for a moment)."""
        item = self._db.get_item(TableName=self.table, Key=to_item({"pk": pk, "sk": sk}),
                                 ConsistentRead=consistent).get("Item")
        return from_item(item) if item else None

    def _batch_get(self, keys: list[tuple[str, str]], projection: str | None = None,
                   names: dict[str, str] | None = None, consistent: bool = False) -> list[dict[str, Any]]:
        """The items at these (pk, sk) that exist, in no particular order."""
        found: list[dict[str, Any]] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):  # BatchGetItem takes 100 keys
            wanted: dict[str, Any] = {"Keys": [to_item({"pk": pk, "sk": sk}) for pk, sk in unique[start : start + 100]],
                                      "ConsistentRead": consistent}
            if projection:
                wanted["ProjectionExpression"] = projection
            if names:
                wanted["ExpressionAttributeNames"] = names
            request: dict[str, Any] = {self.table: wanted}
            while request:
                result = self._db.batch_get_item(RequestItems=request)
                found += [from_item(i) for i in result["Responses"].get(self.table, [])]
                request = result.get("UnprocessedKeys") or {}
        return found

    def _query(self, pk: str, prefix: str | None, exclusive_start: str | None = None, limit: int | None = None,
               projection: str | None = None, consistent: bool = False) -> Iterator[dict[str, Any]]:
        """The partition's items whose sort key starts with `prefix` (None: all of them; a key
        condition cannot compare with an empty string)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk" if prefix is None else "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": to_item({":pk": pk, ":prefix": prefix}),
            "ConsistentRead": consistent,
        }
        if projection:
            kwargs["ProjectionExpression"] = projection
        if exclusive_start is not None:
            kwargs["ExclusiveStartKey"] = to_item({"pk": pk, "sk": exclusive_start})
        if limit is not None:
            kwargs["Limit"] = limit
        while True:
            page = self._db.query(**kwargs)
            for item in page.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _scan(self, prefixes: tuple[str, ...], attributes: Sequence[str] | None = None,
              start: dict[str, str] | None = None,
              page_size: int = 500) -> Iterator[tuple[list[dict[str, Any]], dict[str, str] | None]]:
        """Pages of the items whose `pk` starts with one of `prefixes` (only `attributes` of
        each, or all), each with the position after it (None after the last page), from which
        a later scan can resume."""
        values = {f":p{i}": p for i, p in enumerate(prefixes)}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Limit": page_size,
            "FilterExpression": " OR ".join(f"begins_with(pk, {name})" for name in values),
            "ExpressionAttributeValues": to_item(values),
        }
        if attributes:
            kwargs["ProjectionExpression"] = ", ".join(f"#{name}" for name in attributes)
            kwargs["ExpressionAttributeNames"] = {f"#{name}": name for name in attributes}
        if start:
            kwargs["ExclusiveStartKey"] = to_item(start)
        while True:
            page = self._db.scan(**kwargs)
            position = from_item(page["LastEvaluatedKey"]) if "LastEvaluatedKey" in page else None
            yield [from_item(item) for item in page.get("Items", [])], position
            if position is None:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _transact(self, actions: list[dict[str, Any]]) -> None:
        """One transaction. Concurrent pushes of images that share layers write the same blob
        items (reference counts), which DynamoDB answers with TransactionConflict: retried."""
        for attempt in range(_CONFLICT_RETRIES):
            try:
                self._db.transact_write_items(TransactItems=actions)
                return
            except self._db.exceptions.TransactionCanceledException as error:
                reasons = cancellation_reasons(error)
                if FAILED in reasons or "TransactionConflict" not in reasons or attempt == _CONFLICT_RETRIES - 1:
                    raise
            time.sleep(random.uniform(0, 0.02 * 2**attempt))

    def _transact_all(self, actions: list[dict[str, Any]]) -> None:
        """Run actions in transactions of at most 100, dropping those whose condition fails
        (each is a no-op by design when it does)."""
        for start in range(0, len(actions), TRANSACTION_LIMIT):
            batch = actions[start : start + TRANSACTION_LIMIT]
            while batch:
                try:
                    self._transact(batch)
                    break
                except self._db.exceptions.TransactionCanceledException as error:
                    reasons = cancellation_reasons(error)
                kept = [a for a, r in zip(batch, reasons, strict=False) if r != FAILED]
                if len(kept) == len(batch):
                    raise RuntimeError(f"transaction cancelled: {reasons}")
                batch = kept


def cancellation_reasons(error: Any) -> list[str | None]:
    """Why a transaction was cancelled, one code per action (None where it would have passed)."""
    return [r.get("Code") for r in error.response.get("CancellationReasons", [])]
