"""`berth cache collect`: the pull-through cache's eviction on demand (docs/cache.md), on the
local mode or a deployed stage, with the rules in BERTH_UPSTREAMS as the registry has them."""

from __future__ import annotations

import argparse
from typing import Any

from berth import target
from chalicelib.lifecycle.jobs import never


def register(subparsers: Any) -> None:
    cache = subparsers.add_parser("cache", help="the pull-through cache: evict what was not pulled for a rule's "
                                  "expire_after_days")
    actions = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    collect = actions.add_parser("collect", help="remove cached content not pulled for its rule's expiry, and "
                                 "content of prefixes no longer cached")
    collect.add_argument("--dry-run", action="store_true", help="show what would go and change nothing")
    target.add_arguments(collect)
    collect.set_defaults(run=run_collect)


def run_collect(args: argparse.Namespace) -> int:
    registry = target.registry(args)
    if registry.cache is None:
        print("berth: no pull-through rules: set BERTH_UPSTREAMS as the registry has it (docs/cache.md)")
        return 1
    verb = "would evict" if args.dry_run else "evicted"
    report = registry.cache.eviction.run(never, args.dry_run, lambda line: print(f"  {line}"))
    print(f"{verb}: {report.items} tags, manifests, links and referrer lists; {report.blobs} blobs "
          f"({report.bytes:,} bytes)")
    return 0
