"""What only the running registry can tell about itself, for `berth doctor` (docs/deploy.md):
its runtime (resumable SHA-256, architecture, how the container started), the lifetime of the
URLs it presigns now, whether EventBridge takes its events, and when each scheduled function
last ran. Nothing here names a repository, a user or an account."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from chalicelib.digest import resumable
from chalicelib.registry import Registry

# The functions app.py schedules, and how often (Rate(1, HOURS) each).
SCHEDULED = {"purge_uploads": 3600, "collect_garbage": 3600}


def report(registry: Registry, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    expiry = registry.clients.credentials_expiry()
    return {
        "now": int(now),
        "runtime": {
            "python": platform.python_version(),
            "architecture": platform.machine(),
            # "snap-start" when restored from a SnapStart snapshot, "on-demand" otherwise (Lambda's own)
            "initialization": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
            "resumable_sha256": resumable.available(),
        },
        "presign": {"configured_seconds": registry.settings.presign_seconds,
                    "seconds_now": registry.blobs.presign_seconds(),
                    "credentials_expire_in": int(expiry - now) if expiry is not None else None},
        "events": events(registry),
        "verify_queue": bool(registry.settings.verify_queue_url),
        "schedules": {function: schedule(registry, function, period) for function, period in SCHEDULED.items()},
    }


def events(registry: Registry) -> dict[str, Any]:
    if registry.events is None:
        return {"configured": False}
    refused = registry.events.check(registry.settings.public_url)
    return {"configured": True, "accepted": refused is None, "error": refused}


def schedule(registry: Registry, function: str, period: int) -> dict[str, Any]:
    last = registry.heartbeats.last(function)
    if last is None:
        return {"period": period, "ran": False}
    return {"period": period, "ran": True, "started": last.started, "finished": last.finished,
            "failed": last.failed}
