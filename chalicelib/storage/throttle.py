"""Failed-login counters (chalicelib/auth/throttle.py decides what they mean).

Items: `pk = throttle#<user|source>#<hash>`, `sk = window#<n>` {count, expires}; the table's
TTL removes them once their window is long past."""

from __future__ import annotations

from chalicelib.storage.table import Table, to_item


class FailureCounters(Table):
    def counts(self, keys: list[tuple[str, str]]) -> list[int]:
        return [int((self._get(pk, sk) or {}).get("count", 0)) for pk, sk in keys]

    def add_failure(self, keys: list[tuple[str, str]], expires: int) -> None:
        for pk, sk in keys:
            self._db.update_item(TableName=self.table, Key=to_item({"pk": pk, "sk": sk}),
                                 UpdateExpression="ADD #c :one SET expires = :e",
                                 ExpressionAttributeNames={"#c": "count"},
                                 ExpressionAttributeValues=to_item({":one": 1, ":e": expires}))
