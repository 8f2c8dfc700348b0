"""`berth key ...`: the registry token signing keys (docs/auth.md, "Signing keys")."""

from __future__ import annotations

import argparse
import time
from typing import Any

from berth import target
from chalicelib.auth.keys import DEFAULT_OVERLAP_SECONDS, KeyRing


def register(subparsers: Any) -> None:
    key = subparsers.add_parser("key", help="rotate and list the token signing keys")
    keys = key.add_subparsers(dest="action", required=True, metavar="ACTION")
    rotate = keys.add_parser("rotate", help="sign with a new key; tokens signed with the old ones keep working "
                                            "for --overlap seconds, then stop")
    rotate.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP_SECONDS, metavar="SECONDS",
                        help=f"how long the old keys still verify (default {DEFAULT_OVERLAP_SECONDS}; 0 ends them "
                             "now, so every token and refresh token issued so far stops)")
    rotate.set_defaults(run=rotate_keys)
    listing = keys.add_parser("list", help="list the keys' ids and lifetimes (never the keys)")
    listing.set_defaults(run=list_keys)
    for parser in (rotate, listing):
        target.add_arguments(parser)


def _show(ring: KeyRing) -> None:
    for index, key in enumerate(ring.keys):
        created = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(key.created)) if key.created else "before rings"
        if index == 0:
            state = "signing"
        elif key.retire_at is None:
            state = "verifying"
        else:
            state = "verifying until " + time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(key.retire_at))
        print(f"{key.kid}\tcreated {created}\t{state}")


def rotate_keys(args: argparse.Namespace) -> int:
    if args.overlap < 0:
        raise SystemExit("berth: --overlap is a number of seconds, 0 or more")
    ring = target.registry(args).signing_keys.rotate(args.overlap)
    print(f"now signing with {ring.current.kid}; containers pick the new key up within a minute")
    _show(ring)
    return 0


def list_keys(args: argparse.Namespace) -> int:
    _show(target.registry(args).signing_keys.load())
    return 0
