"""`berth serve`: the local mode, as `make run` starts it."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("serve", help="run a local registry on moto (what `make run` does); "
                                   "options as for python -m berth.local", add_help=False)
    parser.set_defaults(run=run, passthrough=True)


def run(args: argparse.Namespace) -> int:
    from berth.local.__main__ import main

    main(args.extra)
    return 0
