"""`berth relay`: a local registry endpoint in front of an upstream Berth (docs/relay.md)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from contextlib import ExitStack, suppress
from pathlib import Path
from types import FrameType
from typing import Any

from berth.client.tasks import DEFAULT_PARALLEL, MAX_PARALLEL
from berth.relay.server import running
from berth.relay.upstream import Upstream


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "relay", help="serve the registry API locally for stock clients, forwarding to a Berth registry",
        description="Serve the registry API on LISTEN so that docker, podman, skopeo, crane or containerd push "
                    "to and pull from the upstream Berth through it, with their own credentials. Layers too large "
                    "for one request to a Lambda are spooled here and sent straight to S3.")
    parser.add_argument("--listen", default="127.0.0.1:5001", metavar="HOST:PORT",
                        help="where clients reach the relay (default: %(default)s)")
    parser.add_argument("--upstream", required=True, metavar="URL",
                        help="the Berth registry: https://HOST[:PORT] (or HOST[:PORT]; plain HTTP for localhost)")
    parser.add_argument("--insecure", action="store_true", help="do not verify the upstream's TLS certificate")
    parser.add_argument("--spool", type=Path, metavar="DIR",
                        help="where blobs being uploaded wait (in a directory of their own, removed on exit; "
                             "default: the system's temporary directory)")
    parser.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL, metavar="N",
                        help="parts of large blobs in flight to S3 at once (default: %(default)s)")
    parser.add_argument("--idle-timeout", type=float, default=3600.0, metavar="SECONDS",
                        help="remove an upload no request touched for this long (default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only, not every request")
    parser.set_defaults(run=run)


def _listen_address(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT")
    return host or "127.0.0.1", int(port)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # `kill` stops as cleanly as Ctrl-C


def run(args: argparse.Namespace) -> int:
    try:
        listen = _listen_address(args.listen)
        upstream = Upstream.parse(args.upstream, insecure=args.insecure)
        if not 1 <= args.parallel <= MAX_PARALLEL:
            raise ValueError(f"--parallel must be 1 to {MAX_PARALLEL}")
        if args.idle_timeout <= 0:
            raise ValueError("--idle-timeout must be positive")
    except ValueError as error:
        print(f"berth: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # SIGINT too: a shell starts background jobs with it ignored, which Python would keep.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)
    with ExitStack() as stack:
        try:
            server = stack.enter_context(running(listen, upstream, spool=args.spool, parallel=args.parallel,
                                                 idle_seconds=args.idle_timeout))
        except OSError as error:  # the address is taken, the spool not writable
            print(f"berth: cannot start the relay on {args.listen}: {error}", file=sys.stderr)
            return 1
        print(f"Berth relay on http://{server.address}/v2/ for {upstream.origin} "
              f"(uploads spooled in {server.spool})\n"
              f"  push: docker push {server.address}/team/app:1\n"
              f"Ctrl-C stops it.", file=sys.stderr, flush=True)
        with suppress(KeyboardInterrupt):
            server.serve_forever()
    print("berth relay stopped", file=sys.stderr)
    return 0
