"""When each scheduled function last ran: one item per function (`lifecycle` / `ran#<function>`),
written as a run starts and as it ends, so `berth doctor` (chalicelib/diagnostics.py) can tell
a schedule that fires from one that never did, and a run that failed or was cut off."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from chalicelib.storage.table import Table, to_item

PK = "lifecycle"
_NAMES = {"#s": "started", "#f": "finished", "#x": "failed"}


def _key(function: str) -> dict[str, str]:
    return {"pk": PK, "sk": f"ran#{function}"}


@dataclass(frozen=True)
class LastRun:
    started: int  # epoch seconds
    finished: int | None = None  # of the last run that ended; None if none has
    failed: str | None = None  # that run's exception type, when it raised


class Heartbeats(Table):
    @classmethod
    def beside(cls, store: Table) -> Heartbeats:
        """Records in the table `store` uses, through its clients."""
        return cls(store._clients, store.table)

    def _update(self, function: str, expression: str, values: dict[str, object]) -> None:
        # DynamoDB refuses names an expression does not use.
        names = {name: attribute for name, attribute in _NAMES.items() if name in expression}
        self._db.update_item(TableName=self.table, Key=to_item(_key(function)), UpdateExpression=expression,
                             ExpressionAttributeNames=names, ExpressionAttributeValues=to_item(values))

    def started(self, function: str, now: int) -> None:
        self._update(function, "SET #s = :now", {":now": now})

    def finished(self, function: str, now: int, failed: str | None = None) -> None:
        if failed is None:
            self._update(function, "SET #f = :now REMOVE #x", {":now": now})
        else:
            self._update(function, "SET #f = :now, #x = :failed", {":now": now, ":failed": failed})

    def last(self, function: str) -> LastRun | None:
        item = self._get(PK, _key(function)["sk"])
        if item is None or "started" not in item:
            return None
        return LastRun(int(item["started"]), item.get("finished"), item.get("failed"))

    @contextmanager
    def run(self, function: str, clock: Callable[[], float] = time.time) -> Iterator[None]:
        """Around one run of a scheduled function."""
        self.started(function, int(clock()))
        try:
            yield
        except BaseException as error:
            self.finished(function, int(clock()), type(error).__name__)
            raise
        self.finished(function, int(clock()))
