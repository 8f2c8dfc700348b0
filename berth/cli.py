"""The `berth` command."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="berth", description="Berth: a serverless container registry on AWS.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the registry locally on moto (what `make run` does)",
                                add_help=False)
    serve.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "serve":
        from berth.local.__main__ import main as serve_main

        serve_main(args.rest)


if __name__ == "__main__":
    main(sys.argv[1:])
