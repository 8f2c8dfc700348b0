"""`berth fsck`: audit the table against the bucket (chalicelib/lifecycle/audit.py) on the local
mode or a deployed stage; read-only unless `--repair`."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from typing import Any

from berth import target
from chalicelib.lifecycle.audit import Audit, Report
from chalicelib.lifecycle.policy import HOUR


def register(subparsers: Any) -> None:
    fsck = subparsers.add_parser(
        "fsck", help="check that every tag, manifest, blob, link and reference count agrees with what S3 holds "
        "(read-only unless --repair)")
    fsck.add_argument("--repair", action="store_true",
                      help="mend what can be mended without guessing (reference counts, links, dangling tags, "
                      "objects and multipart uploads nothing names), then check again")
    fsck.add_argument("--grace-hours", type=float,
                      help="objects nothing names count as orphans once this old ($BERTH_GC_GRACE_HOURS, 24)")
    fsck.add_argument("--json", action="store_true", help="the findings as one JSON object")
    target.add_arguments(fsck)
    fsck.set_defaults(run=run_fsck)


def run_fsck(args: argparse.Namespace) -> int:
    settings = target.registry(args).settings
    if args.grace_hours is not None:
        settings = replace(settings, lifecycle=replace(settings.lifecycle, gc_grace_hours=args.grace_hours))
    audit = Audit.build(settings, clock=time.time)
    report = audit.run()
    repaired = audit.repair(report.findings) if args.repair and report.findings else []
    after = audit.run() if repaired else report
    if args.json:
        print(json.dumps({"checked": report.checked, "findings": [_plain(f) for f in report.findings],
                          "repaired": repaired, "remaining": [_plain(f) for f in after.findings]}))
        return 1 if after.findings else 0
    _print(report, grace=settings.lifecycle.gc_grace)
    if repaired:
        print("repairs:")
        for line in repaired:
            print(f"  {line}")
        print("after repair: " + ("clean" if not after.findings else f"{len(after.findings)} findings remain"))
    return 1 if after.findings else 0


def _plain(finding: Any) -> dict[str, Any]:
    return {k: v for k, v in asdict(finding).items() if k != "facts"}


def _print(report: Report, grace: int) -> None:
    checked = ", ".join(f"{count:,} {name}" for name, count in report.checked.items())
    print(f"checked {checked} (orphans: older than {grace / HOUR:g} h)")
    if not report.findings:
        print("clean: every check holds")
        return
    print(f"{len(report.findings)} findings:")
    width = max(len(f.kind) for f in report.findings)
    for finding in report.findings:
        print(f"  {finding.kind:<{width}}  {finding.subject}: {finding.detail}")
