"""The `berth` command. Each subcommand group is a module of `berth.commands` with a
`register(subparsers)` function that adds its parser and sets `run` (taking the parsed
arguments, returning an exit status) as the default."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import berth.commands
from berth.target import explain


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="berth", description="Berth: a serverless container registry on AWS.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(berth.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"berth.commands.{module.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # A command that hands its options on to another parser (serve) takes the rest as they are.
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        return int(args.run(args) or 0)
    except Exception as error:
        # Trouble reaching the registry's AWS is the user's to fix: say what, not a traceback.
        explained = explain(error)
        if explained is None:
            raise
        print(f"berth: {explained}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
