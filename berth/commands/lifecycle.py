"""`berth gc` and `berth stats`: storage lifecycle on the local mode or a deployed stage."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from typing import Any

from berth import target
from chalicelib.cache.counters import totals
from chalicelib.lifecycle.collector import Busy, Collector
from chalicelib.lifecycle.jobs import Housekeeping, never
from chalicelib.storage.cache import CacheStore
from chalicelib.storage.clients import AwsClients


def register(subparsers: Any) -> None:
    gc = subparsers.add_parser("gc", help="purge abandoned uploads, apply retention rules, remove unreferenced "
                               "blobs; prints what it frees")
    gc.add_argument("--dry-run", action="store_true", help="show what would be freed and change nothing")
    gc.add_argument("-q", "--quiet", action="store_true", help="totals only, not each thing freed")
    gc.add_argument("--break-lease", action="store_true",
                    help="take over the lease of a collection that stopped heartbeating (killed); one still "
                         "heartbeating only if you confirm at the prompt")
    gc.set_defaults(run=run_gc)
    stats = subparsers.add_parser("stats", help="repositories, tags, manifests, blobs, bytes stored and reclaimable")
    stats.add_argument("--json", action="store_true", help="as one JSON object")
    stats.set_defaults(run=run_stats)
    for parser in (gc, stats):
        target.add_arguments(parser)
        rules = parser.add_argument_group("lifecycle (defaults: the BERTH_* environment, as deployed)")
        rules.add_argument("--lifecycle", metavar="FILE", help="the lifecycle document ($BERTH_LIFECYCLE_FILE)")
        rules.add_argument("--grace-hours", type=float,
                           help="keep unreferenced blobs this long ($BERTH_GC_GRACE_HOURS)")
        rules.add_argument("--upload-max-age-hours", type=float,
                           help="purge uploads idle this long ($BERTH_UPLOAD_MAX_AGE_HOURS)")


def _housekeeping(args: argparse.Namespace) -> Housekeeping:
    # The settings come from the environment, as in the Lambda: flags override it there.
    if args.lifecycle:
        os.environ.pop("BERTH_LIFECYCLE", None)
        os.environ["BERTH_LIFECYCLE_FILE"] = args.lifecycle
    if args.grace_hours is not None:
        os.environ["BERTH_GC_GRACE_HOURS"] = str(args.grace_hours)
    if args.upload_max_age_hours is not None:
        os.environ["BERTH_UPLOAD_MAX_AGE_HOURS"] = str(args.upload_max_age_hours)
    return Housekeeping.build(target.registry(args).settings)


def _bytes(count: int) -> str:
    return f"{count:,} bytes"


def run_gc(args: argparse.Namespace) -> int:
    jobs = _housekeeping(args)
    notify = (lambda line: None) if args.quiet else (lambda line: print(f"  {line}"))
    verb = "would free" if args.dry_run else "freed"
    if not args.quiet:
        print(f"{verb}:")
    purged = jobs.purge(never, args.dry_run, notify)
    uploads = f"{purged.uploads} abandoned uploads ({_bytes(purged.bytes)})"
    try:
        collector = jobs.collector(notify)
        if args.break_lease and not args.dry_run and not _break_lease(collector):
            return 1
        run = collector.dry_run() if args.dry_run else collector.run(never)
    except Busy:
        # The purge has run all the same: say what it did.
        print(f"{verb}: {uploads}; nothing collected: another collection is running (the scheduled one?); "
              "try again later")
        return 1
    orphans = f", {purged.pieces} orphaned pieces ({_bytes(purged.piece_bytes)})" if purged.pieces else ""
    orphans += f", {purged.multipart} orphaned multipart uploads" if purged.multipart else ""
    orphans += f", {purged.bodies} orphaned manifest bodies" if purged.bodies else ""
    print(f"{verb}: {uploads}{orphans}, {run.tags} tags, "
          f"{run.manifests} manifests, {run.blobs} blobs ({_bytes(run.bytes)}); "
          f"{_bytes(purged.bytes + purged.piece_bytes + run.bytes)} in all")
    return 0


def _break_lease(collector: Collector) -> bool:
    """Free the lease of a collection that stopped heartbeating; for one that still does, ask.
    False when the user says no (or cannot be asked)."""
    try:
        broken = collector.break_lease()
    except Busy as busy:
        holder = busy.holder
        if holder is None:
            return True  # released meanwhile
        print(f"berth: a collection ({holder.owner}) heartbeated {holder.silent_for(int(time.time()))} s ago and "
              "is probably still running; taking its lease makes it stop at its next heartbeat.")
        if not sys.stdin.isatty() or input("take its lease anyway? [y/N] ").strip().lower() not in ("y", "yes"):
            print("berth: lease left alone")
            return False
        broken = collector.break_lease(force=True)
    if broken is not None:
        print(f"berth: took over the lease of collection {broken.owner} (last heartbeat "
              f"{broken.silent_for(int(time.time()))} s ago); carrying on its checkpoint")
    return True


def run_stats(args: argparse.Namespace) -> int:
    jobs = _housekeeping(args)
    stats = jobs.stats()
    cache = totals(CacheStore(AwsClients(jobs.settings.region), jobs.settings.table).counts())
    if args.json:
        print(json.dumps({**asdict(stats), "bytes_stored": stats.bytes_stored,
                          "bytes_reclaimable": stats.bytes_reclaimable, "cache": cache}))
        return 0
    rows = [
        ("repositories", f"{stats.repositories:,}"),
        ("tags", f"{stats.tags:,}"),
        ("manifests", f"{stats.manifests:,} ({_bytes(stats.manifest_bytes)} in S3)"),
        ("blobs", f"{stats.blobs:,} ({_bytes(stats.blob_bytes)})"),
        ("uploads in progress", f"{stats.uploads:,} ({_bytes(stats.upload_bytes)})"),
        ("bytes stored", _bytes(stats.bytes_stored)),
        ("bytes reclaimable", f"{_bytes(stats.bytes_reclaimable)}: {stats.unreferenced_blobs:,} unreferenced "
                              f"blobs ({_bytes(stats.unreferenced_bytes)}; {stats.collectible_blobs:,} past the "
                              f"grace period, {_bytes(stats.collectible_bytes)}), {stats.abandoned_uploads:,} "
                              f"abandoned uploads ({_bytes(stats.abandoned_bytes)})"),
    ]
    if any(cache.values()):  # the pull-through cache (docs/cache.md), once used
        rows += [
            ("cache pulls", f"{cache['hits']:,} hits, {cache['misses']:,} misses ({cache['revalidated']:,} tags "
                            f"revalidated, {cache['stale']:,} served stale), {cache['upstream_requests']:,} "
                            f"upstream requests"),
            ("cache bytes", f"{_bytes(cache['bytes_saved'])} saved; {_bytes(cache['bytes_copied'])} copied in "
                            f"{cache['copies']:,} blobs ({cache['copies_rejected']:,} refused); "
                            f"{_bytes(cache['bytes_evicted'])} evicted"),
        ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0
