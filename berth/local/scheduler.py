"""The local mode's stand-in for EventBridge's schedules: each function app.py schedules
(`@app.schedule`) runs in a borrowed container, with the event EventBridge sends, at the rate
app.py gives it. Deployed, a `rate(1 hour)` schedule first fires within the hour after the
stack is created; here the first run is when the local mode starts (on an empty registry it
does nothing but record that it ran), so `berth doctor` finds the schedules working at once."""

from __future__ import annotations

import datetime
import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from berth.local.apigateway import LambdaContext

log = logging.getLogger("berth_local.scheduler")
UNIT_SECONDS = {"MINUTES": 60, "HOURS": 3600, "DAYS": 86_400}
JOB_TIMEOUT_MS = 900_000  # the scheduled functions' Lambda timeout


def periods(app: Any) -> dict[str, int]:
    """Seconds between runs of each scheduled function of a Chalice app."""
    found = {}
    for source in app.event_sources:
        rate = getattr(source, "schedule_expression", None)
        if rate is None:
            continue
        if getattr(rate, "unit", None) not in UNIT_SECONDS:
            raise ValueError(f"{source.name}: only rate() schedules run locally, not {rate.to_string()}")
        found[source.name] = int(rate.value) * UNIT_SECONDS[rate.unit]
    return found


def scheduled_event(function: str, now: float) -> dict[str, Any]:
    """What EventBridge hands a scheduled Lambda."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "region": "us-east-1", "detail": {},
            "time": datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "resources": [f"arn:aws:events:us-east-1:000000000000:rule/berth-local-{function}"]}


class Scheduler(threading.Thread):
    """Runs every scheduled function once now (`run_due`), then each again when its period has
    passed, until stopped. A run that fails is logged, and tried again a period later."""

    def __init__(self, borrow: Callable[[], AbstractContextManager[Any]], every: dict[str, int],
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name="berth-scheduler", daemon=True)
        self._borrow, self._every, self._clock = borrow, every, clock
        self._next = dict.fromkeys(every, 0.0)
        self._stop_event = threading.Event()

    def run_due(self) -> list[str]:
        ran = []
        for function, due in self._next.items():
            now = self._clock()
            if now < due:
                continue
            self._next[function] = now + self._every[function]
            try:
                with self._borrow() as app:
                    app.handler_map[function](scheduled_event(function, now), LambdaContext(JOB_TIMEOUT_MS))
            except Exception:
                log.exception("%s failed", function)
            ran.append(function)
        return ran

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.run_due()
            self._stop_event.wait(max(1.0, min(self._next.values()) - self._clock()))

    def stop(self) -> None:
        self._stop_event.set()
