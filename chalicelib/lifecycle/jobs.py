"""The lifecycle jobs wired to storage: the scheduled Lambdas (app.py) and `berth gc` /
`berth stats` (berth/commands/lifecycle.py) both start here."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.lifecycle.collector import Busy, Collector
from chalicelib.lifecycle.purge import (
    PurgeReport,
    purge_uploads,
    settle_bodies,
    sweep_multipart,
    sweep_pieces,
)
from chalicelib.lifecycle.stats import Stats, tally
from chalicelib.manifests.service import Manifests
from chalicelib.settings import Settings
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.housekeeping import HousekeepingStore
from chalicelib.storage.keys import TOMBSTONE
from chalicelib.storage.s3 import BlobStore
from chalicelib.uploads.service import Uploads

log = logging.getLogger("berth.lifecycle")
log.setLevel(logging.INFO)  # a line per thing removed: the audit trail, in CloudWatch Logs
# Stop this long before the Lambda's own limit: the page or repository in hand, and the
# checkpoint after it, must still fit.
STOP_MARGIN_MS = 60_000


def never() -> bool:
    return False


def time_left(context: Any) -> Callable[[], bool]:
    """`should_stop` for a Lambda invocation."""
    return lambda: bool(context.get_remaining_time_in_millis() < STOP_MARGIN_MS)


@dataclass
class Housekeeping:
    settings: Settings
    store: HousekeepingStore
    blobs: BlobStore
    uploads: Uploads
    manifests: Manifests
    clock: Callable[[], float] = time.time

    @classmethod
    def build(cls, settings: Settings, clients: AwsClients | None = None,
              clock: Callable[[], float] = time.time) -> Housekeeping:
        aws = clients or AwsClients(settings.region)
        blobs = BlobStore(aws, settings.bucket, settings.presign_seconds)
        store = HousekeepingStore(aws, settings.table)
        return cls(settings, store, blobs, Uploads(blobs, store), Manifests(blobs, store, settings.lifecycle), clock)

    def purge(self, should_stop: Callable[[], bool] = never, dry_run: bool = False,
              notify: Callable[[str], None] = log.info) -> PurgeReport:
        now = int(self.clock())
        report = purge_uploads(self.store, self.uploads, now - self.settings.lifecycle.upload_max_age, should_stop,
                               dry_run, notify)
        if report.complete:
            report.complete = sweep_pieces(self.store, self.blobs, now, should_stop, report, dry_run, notify)
        if report.complete:
            report.complete = settle_bodies(self.store, self.blobs, now, should_stop, report, dry_run, notify)
        if report.complete:
            sweep_multipart(self.store, self.blobs, now, report, dry_run, notify)
        return report

    def scheduled_purge(self, should_stop: Callable[[], bool]) -> dict[str, Any]:
        return asdict(self.purge(should_stop))

    def collector(self, notify: Callable[[str], None] = log.info) -> Collector:
        return Collector(self.store, self.manifests, self.blobs, self.settings.lifecycle, self.clock, notify)

    def scheduled_collection(self, should_stop: Callable[[], bool]) -> dict[str, Any]:
        collector = self.collector()
        if not collector.due():
            return {"status": "not due"}
        try:
            return asdict(collector.run(should_stop))
        except Busy:
            return {"status": "busy"}

    def stats(self) -> Stats:
        now, lifecycle = int(self.clock()), self.settings.lifecycle
        kinds = ("catalog", "repo#", "blob#", TOMBSTONE, "upload#")
        items = (item for page, _ in self.store.scan(kinds) for item in page)
        return tally(items, now - lifecycle.gc_grace, now - lifecycle.upload_max_age)
