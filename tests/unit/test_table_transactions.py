"""Transaction retries and partial application in storage/table.py, against a stand-in client."""

from typing import Any

import pytest

from chalicelib.storage.table import Table


class Cancelled(Exception):
    def __init__(self, codes: list[str | None]) -> None:
        super().__init__(codes)
        self.response = {"CancellationReasons": [{"Code": c} for c in codes]}


class FakeDynamo:
    class exceptions:  # noqa: N801 - boto3's spelling
        TransactionCanceledException = Cancelled

    def __init__(self, outcomes: list[list[str | None] | None]) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[list[Any]] = []

    def transact_write_items(self, TransactItems: list[Any]) -> None:  # noqa: N803 - boto3's spelling
        self.calls.append(TransactItems)
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise Cancelled(outcome)


def table(outcomes: list[list[str | None] | None], monkeypatch: pytest.MonkeyPatch) -> tuple[Table, FakeDynamo]:
    monkeypatch.setattr("chalicelib.storage.table.time.sleep", lambda seconds: None)
    db = FakeDynamo(outcomes)
    clients: Any = type("Clients", (), {"dynamodb": db})()
    return Table(clients, "t"), db


def test_transaction_conflicts_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    store, db = table([["TransactionConflict", "None"], ["None", "TransactionConflict"], None], monkeypatch)
    store._transact(["a", "b"])
    assert len(db.calls) == 3


def test_a_failed_condition_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    store, db = table([["ConditionalCheckFailed", "TransactionConflict"]], monkeypatch)
    with pytest.raises(Cancelled):
        store._transact(["a", "b"])
    assert len(db.calls) == 1


def test_transact_all_drops_failed_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    store, db = table([["None", "ConditionalCheckFailed", "None"], None], monkeypatch)
    store._transact_all(["a", "b", "c"])
    assert db.calls == [["a", "b", "c"], ["a", "c"]]
