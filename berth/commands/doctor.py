"""`berth doctor URL`: check a registry the way its clients and AWS will use it, one verdict per
line (berth/doctor/checks.py), and exit non-zero when a check failed. Run it right after `make
deploy` (docs/deploy.md); CI runs it against the local mode."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import urlsplit

import requests

from berth.client import AuthError, ClientError, Credentials, RegistryClient
from berth.doctor import checks
from berth.doctor.verdicts import FAIL, PASS, SKIP, WAIT, Verdict, exit_status, failed

DEFAULT_REPOSITORY = "berth-doctor"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check a registry end to end (run it after `make deploy`); exits 1 if a check fails",
        description="Check a registry from outside: the auth challenge and token, chunked and binary bodies, "
                    "manifests byte for byte, the size limits, blob redirects to S3, a direct upload and its "
                    "verification, and what the registry reports of its runtime, events and schedules. One "
                    "verdict per line (PASS, FAIL, SKIP: not configured, WAIT: ask again later), with what was "
                    "seen and, on failure, what to do. What it pushes into REPOSITORY it removes at the end.")
    parser.add_argument("url", metavar="URL", help="the registry, e.g. https://registry.example.com or "
                                                   "http://127.0.0.1:5000")
    parser.add_argument("--user", help="a user of the registry (default: $BERTH_USERNAME)")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the user's password (or CI token) from standard input (default: $BERTH_PASSWORD)")
    parser.add_argument("--repository", default=DEFAULT_REPOSITORY,
                        help="where to push and delete its test content (default: %(default)s); the user needs "
                             "push and delete there")
    parser.add_argument("--verify-seconds", type=float, default=60.0,
                        help="how long a direct upload may take to be verified (default: %(default)s)")
    parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    parser.set_defaults(run=run)


def target(url: str) -> tuple[str, bool | None]:
    """`host[:port]` and whether to speak plain HTTP (None: HTTPS unless loopback)."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    if parts.scheme not in ("", "http", "https") or not parts.netloc or parts.path.strip("/") or parts.query:
        raise SystemExit(f"berth doctor: {url!r} is not a registry URL (https://HOST[:PORT])")
    return parts.netloc, (parts.scheme == "http") if parts.scheme else None


def credentials(args: argparse.Namespace) -> Credentials | None:
    if args.password_stdin:
        if not args.user:
            raise SystemExit("berth doctor: --password-stdin needs --user")
        return Credentials(args.user, sys.stdin.read().rstrip("\r\n"))
    from_env = Credentials.from_env()
    if args.user:
        if from_env is None or from_env.username != args.user:
            raise SystemExit("berth doctor: give the password with --password-stdin (or $BERTH_PASSWORD)")
        return from_env
    return from_env


def run(args: argparse.Namespace) -> int:
    host, plain_http = target(args.url)
    login = credentials(args)
    client = RegistryClient(host, credentials=login, plain_http=plain_http, insecure=args.insecure)
    doctor = checks.Doctor(client, args.repository, args.verify_seconds, login)
    print(f"berth doctor {client.session.base} (repository {args.repository}"
          f"{', as ' + login.username if login else ', no credentials'})", flush=True)
    verdicts: list[Verdict] = []

    def record(verdict: Verdict) -> None:
        verdicts.append(verdict)
        print(verdict.line(), flush=True)

    try:
        for check in checks.CHECKS:
            name = check.__name__.replace("_", "-")
            try:
                record(check(doctor))
            except AuthError as error:
                record(failed(name, str(error), f"give a user that may push and delete in {args.repository} "
                              "(--user, --password-stdin), or a repository it may (--repository)"))
            except (ClientError, requests.RequestException) as error:  # unexpected: a verdict all the same
                record(failed(name, str(error), "see the evidence; run with the same URL again once fixed"))
    finally:
        record(checks.cleanup(doctor))
    counts = {status: sum(v.status == status for v in verdicts) for status in (PASS, FAIL, SKIP, WAIT)}
    print(", ".join(f"{count} {status.lower()}" for status, count in counts.items() if count), flush=True)
    return exit_status(verdicts)
