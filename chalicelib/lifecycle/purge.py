"""Purge of abandoned uploads: records, S3 multipart uploads and piece objects of uploads no
chunk reached for `BERTH_UPLOAD_MAX_AGE_HOURS`. Each upload goes only if it did not move since
it was read (offset and last touch), so a live upload never loses bytes. The uploads come from
the sweep index, oldest touch first, and only those idle long enough are read: a run costs
what it removes. No checkpoint: every run starts from the beginning, and a run that stops
early leaves the rest to the next one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.lifecycle.sweep import upload_abandoned
from chalicelib.storage.housekeeping import HousekeepingStore
from chalicelib.storage.uploads import upload_record
from chalicelib.uploads.service import Uploads
from chalicelib.uploads.state import UploadState


@dataclass
class PurgeReport:
    uploads: int = 0
    bytes: int = 0
    complete: bool = False


def purge_uploads(store: HousekeepingStore, uploads: Uploads, cutoff: int, should_stop: Callable[[], bool],
                  dry_run: bool = False, notify: Callable[[str], None] = lambda line: None,
                  page_size: int = 500) -> PurgeReport:
    """Drop the uploads with no commit since `cutoff` (a dry run only counts them); stop
    between scan pages when `should_stop` says so."""
    report = PurgeReport()
    for page, position in store.candidates("upload", cutoff, page_size=page_size):
        for item in page:
            if not upload_abandoned(item, cutoff):
                continue
            state = UploadState.of(upload_record(item["pk"].split("#", 1)[1], item))
            if dry_run or uploads.abandon(state, idle_since=item["touched"]):
                report.uploads += 1
                report.bytes += state.offset
                notify(f"upload {state.uuid} in {state.repo} ({state.offset} bytes)")
        if position is not None and should_stop():
            return report
    report.complete = True
    return report
