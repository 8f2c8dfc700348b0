"""A load on the local mode's moto like the one pushes make, for the memory bound
(tests/local/test_local_durability.py) and its figures (bench/localmemory.py)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from berth.local.provision import create_table
from chalicelib.storage.table import to_item

MANIFESTS = 300
BODY = 600


def small_registry(db: Any, table: str) -> int:
    """A table of its own holding 300 manifests of 600 bytes; the bytes stored."""
    create_table(db, table)
    for n in range(MANIFESTS):
        db.put_item(TableName=table, Item=to_item({"pk": f"repo#{n % 10}", "sk": f"m#{n}", "body": os.urandom(BODY)}))
    return MANIFESTS * (BODY + 20)


def transactions(db: Any, table: str, count: int) -> None:
    """Reference counts and upload records in transactions, every other one cancelled by its
    condition (the item exists): moto's rollback path."""
    for n in range(count):
        counted = {"Update": {"TableName": table, "Key": to_item({"pk": f"blob#{n % 50}", "sk": "blob"}),
                              "UpdateExpression": "ADD refs :one", "ExpressionAttributeValues": to_item({":one": 1})}}
        fresh: dict[str, Any] = {"Put": {"TableName": table, "Item": to_item({"pk": "upload", "sk": str(n % 7)})}}
        if n % 2:
            fresh["Put"]["ConditionExpression"] = "attribute_not_exists(pk)"
        with contextlib.suppress(db.exceptions.TransactionCanceledException):
            db.transact_write_items(TransactItems=[counted, fresh])
