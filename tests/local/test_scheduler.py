"""The local mode's schedules: the functions app.py schedules, at app.py's rates, with the
event EventBridge sends; the first run at once, the next a period later."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from berth.local.scheduler import Scheduler, periods
from chalicelib import diagnostics


def test_the_local_mode_runs_what_app_py_schedules_at_its_rates() -> None:
    import app

    # berth doctor checks the storage jobs' runs; the cache's eviction runs beside them.
    assert diagnostics.SCHEDULED == {"purge_uploads": 3600, "collect_garbage": 3600}
    assert periods(app.app) == {**diagnostics.SCHEDULED, "collect_cache": 3600}


class FakeApp:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], int]] = []
        self.handler_map = {"tidy": self._handler("tidy"), "broken": self._broken}

    def _handler(self, name: str) -> Any:
        return lambda event, context: self.calls.append((name, event, context.get_remaining_time_in_millis()))

    def _broken(self, event: dict[str, Any], context: Any) -> None:
        self.calls.append(("broken", event, 0))
        raise RuntimeError("broken job")


def test_each_function_runs_now_then_once_a_period(caplog: pytest.LogCaptureFixture) -> None:
    app, now = FakeApp(), [1_000.0]

    @contextlib.contextmanager
    def borrow() -> Iterator[FakeApp]:
        yield app

    scheduler = Scheduler(borrow, {"tidy": 60, "broken": 600}, clock=lambda: now[0])
    assert scheduler.run_due() == ["tidy", "broken"]
    name, event, remaining = app.calls[0]
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert remaining > 800_000  # a Lambda's 900 s
    assert "broken job" in caplog.text  # logged, and the scheduler goes on
    now[0] += 59
    assert scheduler.run_due() == []
    now[0] += 1
    assert scheduler.run_due() == ["tidy"]
    now[0] += 600
    assert scheduler.run_due() == ["tidy", "broken"]
