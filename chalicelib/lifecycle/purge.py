"""Purge of abandoned uploads: records, S3 multipart uploads and piece objects of uploads no
chunk reached for `BERTH_UPLOAD_MAX_AGE_HOURS`; then the pieces no record names.

Each upload goes only if it did not move since it was read (offset and last touch), so a live
upload never loses bytes. The uploads come from the sweep index, and only those idle long
enough are read: a run costs what it removes. No checkpoint: every run starts from the
beginning, and a run that stops early leaves the rest to the next one. Pieces are filed by
the hour they were written in; each hour is listed once, after its requests have ended, and
the hour last swept is the checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.lifecycle.policy import HOUR
from chalicelib.storage.housekeeping import HousekeepingStore
from chalicelib.storage.keys import UNSETTLED_BODY
from chalicelib.storage.s3 import BlobStore
from chalicelib.storage.uploads import upload_record
from chalicelib.uploads.service import Uploads
from chalicelib.uploads.state import (
    PIECES_PREFIX,
    UPLOAD_OBJECT_PREFIXES,
    UploadState,
    parse_piece_key,
    piece_hour,
    upload_of_object,
)

# An hour's pieces are swept once every request that could still write into it has ended (a
# Lambda runs 15 minutes at most) and every commit has landed: an hour after it ends.
PIECE_SWEEP_LAG = 2 * HOUR


@dataclass
class PurgeReport:
    uploads: int = 0
    bytes: int = 0
    complete: bool = False
    pieces: int = 0  # objects no record names: written by requests that died before their commit
    piece_bytes: int = 0
    multipart: int = 0  # S3 multipart uploads no record names: started by requests that never recorded them
    bodies: int = 0  # manifest bodies in S3 no record names: written or left by requests that died


def purge_uploads(store: HousekeepingStore, uploads: Uploads, cutoff: int, should_stop: Callable[[], bool],
                  dry_run: bool = False, notify: Callable[[str], None] = lambda line: None,
                  page_size: int = 500) -> PurgeReport:
    """Drop the uploads with no commit since `cutoff` (a dry run only counts them); stop
    between scan pages when `should_stop` says so."""
    report = PurgeReport()
    for page, position in store.candidates("upload", cutoff, page_size=page_size):
        for item in page:  # each touched before `cutoff`: the index's own condition
            state = UploadState.of(upload_record(item["pk"].split("#", 1)[1], item))
            if dry_run or uploads.abandon(state, idle_since=item["touched"]):
                report.uploads += 1
                report.bytes += state.offset
                notify(f"upload {state.uuid} in {state.repo} ({state.offset} bytes)")
        if position is not None and should_stop():
            return report
    report.complete = True
    return report


def sweep_pieces(store: HousekeepingStore, blobs: BlobStore, now: int, should_stop: Callable[[], bool],
                 report: PurgeReport, dry_run: bool = False, notify: Callable[[str], None] = lambda line: None) -> bool:
    """Delete the pieces no record names, hour by hour from the last hour swept (a dry run
    only counts them); False when told to stop first. A piece is named by its upload while the
    upload lives, and a first piece that became a blob as it is by that blob's record: what
    else is under an hour, once that hour is past, was written by a request that died before
    its commit (or before removing what it no longer needed)."""
    last, until = store.pieces_swept(), piece_hour(now - PIECE_SWEEP_LAG)
    if last is not None and last >= until:
        return True  # swept up to the last hour that can be
    # The hours that have pieces, listed as folders: a registry idle for a month costs one
    # listing here, not one per hour.
    marked = last
    for folder in blobs.folders(PIECES_PREFIX, after=f"{PIECES_PREFIX}{last}/" if last else PIECES_PREFIX):
        hour = folder[len(PIECES_PREFIX):].rstrip("/")
        if last is not None and hour <= last:  # the swept hour's own keys sort after its name
            continue
        if hour > until:
            break
        if should_stop():
            return False
        for page in blobs.listing(folder):
            owners = {key: (name.uuid, name.digest) for key, _ in page if (name := parse_piece_key(key))}
            named = store.named(owners)
            orphans = [(key, size) for key, size in page if key in owners and key not in named]
            if not dry_run:
                blobs.delete([key for key, _ in orphans])
            for key, size in orphans:
                report.pieces += 1
                report.piece_bytes += size
                notify(f"piece {key} ({size} bytes), written by a request that died")
        if not dry_run:
            store.mark_pieces_swept(hour)
            marked = hour
    if not dry_run and marked != until:
        store.mark_pieces_swept(until)  # no request writes into an hour this old any more
    return True


def sweep_multipart(store: HousekeepingStore, blobs: BlobStore, now: int, report: PurgeReport,
                    dry_run: bool = False, notify: Callable[[str], None] = lambda line: None) -> None:
    """Abort the uploads' S3 multipart uploads that no record names (a dry run only counts
    them). A request records the multipart upload it starts within its Lambda's 15 minutes;
    one that never did died first, or never learnt the id (S3's answer was lost, or botocore
    sent the request again and S3 started two). The listing holds the multipart uploads still
    open, so a run costs what is uploading now, not what the registry stores."""
    cutoff = now - PIECE_SWEEP_LAG
    for prefix in UPLOAD_OBJECT_PREFIXES:
        old = {upload_id: (key, uuid) for key, upload_id, initiated in blobs.multipart_uploads(prefix)
               if initiated < cutoff and (uuid := upload_of_object(key))}
        named = store.multipart_named({upload_id: uuid for upload_id, (_, uuid) in old.items()})
        for upload_id, (key, _) in old.items():
            if upload_id in named:
                continue
            if not dry_run:
                blobs.abort_multipart(key, upload_id)
            report.multipart += 1
            notify(f"multipart upload {upload_id} of {key}, which no upload recorded")


def settle_bodies(store: HousekeepingStore, blobs: BlobStore, now: int, should_stop: Callable[[], bool],
                  report: PurgeReport, dry_run: bool = False, notify: Callable[[str], None] = lambda line: None,
                  page_size: int = 500) -> bool:
    """Settle the manifest bodies a push or a delete left unsettled (its request died, or its
    answer was lost) before any request could still settle them: a body its holder names stays,
    any other is deleted (a dry run only counts them). False when told to stop first."""
    for page, position in store.candidates("body", now - PIECE_SWEEP_LAG, page_size=page_size):
        named = store.bodies_named(page)
        keys = [item["pk"][len(UNSETTLED_BODY):] for item in page]
        orphans = [(key, item) for key, item in zip(keys, page, strict=True) if key not in named]
        for key, item in orphans:
            report.bodies += 1
            notify(f"manifest body {key} of {item['holder_pk']} {item['holder_sk']}, which no record names")
        if not dry_run:
            blobs.delete([key for key, _ in orphans])
            for key, item in zip(keys, page, strict=True):
                store.settle_body(key, item.get("note"))  # a delete may have noted a kept body since
        if position is not None and should_stop():
            return False
    return True
