"""Failed-login counters (chalicelib/auth/throttle.py decides what they mean).

Items: `pk = throttle#<user|source>#<hash>`, `sk = window#<n>` {count, expires}; the table's
TTL removes them once their window is long past. A login reserves its attempt on each counter
with a conditional write before anything is checked, and gives it back if it succeeds."""

from __future__ import annotations

from chalicelib.storage.table import Table, to_item


class FailureCounters(Table):
    def reserve(self, keys: list[tuple[str, str]], limits: list[int], expires: int) -> int:
        """Add one to each counter below its limit, in order; how many were taken (fewer than
        all: that one was at its limit, and those before it were given back)."""
        for taken, ((pk, sk), limit) in enumerate(zip(keys, limits, strict=True)):
            added = self._conditionally(
                "update_item", Key=to_item({"pk": pk, "sk": sk}), UpdateExpression="ADD #c :one SET expires = :e",
                ConditionExpression="attribute_not_exists(#c) OR #c < :limit", ExpressionAttributeNames={"#c": "count"},
                ExpressionAttributeValues=to_item({":one": 1, ":e": expires, ":limit": limit}))
            if not added:
                self.release(keys[:taken])
                return taken
        return len(keys)

    def release(self, keys: list[tuple[str, str]]) -> None:
        for pk, sk in keys:
            self._db.update_item(TableName=self.table, Key=to_item({"pk": pk, "sk": sk}),
                                 UpdateExpression="ADD #c :minus", ExpressionAttributeNames={"#c": "count"},
                                 ExpressionAttributeValues=to_item({":minus": -1}))
