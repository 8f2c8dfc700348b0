"""`berth login` and `berth logout`: how docker, podman and BuildKit get credentials for a
registry from `docker-credential-berth` (docs/auth.md, "Keyless access")."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from berth.client.auth import Credentials
from berth.client.errors import ClientError
from berth.client.session import RegistrySession
from berth.keyless import sources
from berth.keyless.store import Entry, Store, docker_config_path, use_helper


def register(subparsers: Any) -> None:
    login = subparsers.add_parser(
        "login", help="have docker, podman and BuildKit get credentials for a registry from berth",
        description="Records how credentials for REGISTRY are made and names docker-credential-berth for it in "
                    "docker's config (credHelpers). --aws signs an STS request with your AWS credentials each time; "
                    "--oidc asks the CI for an ID token each time; otherwise a user name and password or CI token "
                    "are stored (readable by you only). Then checks them against the registry.")
    login.add_argument("registry", metavar="REGISTRY", help="host[:port], as in image names")
    how = login.add_mutually_exclusive_group()
    how.add_argument("--aws", action="store_true", help="log in as your IAM identity (no secret stored)")
    how.add_argument("--oidc", action="store_true", help="log in with the CI job's OIDC ID token (no secret stored)")
    how.add_argument("-u", "--username", help="a user, whose password or CI token is read from stdin")
    login.add_argument("--audience", default="",
                       help="with --oidc: the audience to ask the CI for (default: REGISTRY)")
    login.add_argument("--no-check", action="store_true", help="do not try the credentials now")
    login.add_argument("--insecure", action="store_true", help="do not verify the registry's TLS certificate")
    login.set_defaults(run=run_login)
    logout = subparsers.add_parser("logout", help="forget how to log in to a registry")
    logout.add_argument("registry", metavar="REGISTRY")
    logout.set_defaults(run=run_logout)


def _entry(args: argparse.Namespace) -> Entry:
    if args.aws:
        return Entry(sources.AWS_USER)
    if args.oidc:
        return Entry(sources.OIDC_USER, audience=args.audience)
    if not args.username:
        raise SystemExit("berth login: give --aws, --oidc, or --username with the password on stdin")
    secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        raise SystemExit("berth login: no password on stdin")
    return Entry("password", username=args.username, secret=secret)


def _check(registry: str, entry: Entry, insecure: bool) -> str | None:
    """Why the registry refused these credentials, or None when it accepted them."""
    try:
        found = sources.credentials(registry, entry)
        assert found is not None  # an entry always yields credentials, or raises
        session = RegistrySession(registry, credentials=Credentials(*found), insecure=insecure)
        session.request("GET", "/v2/", scope="", expect={200}).close()
    except (sources.NoCredentials, ClientError) as error:
        return str(error)
    return None


def run_login(args: argparse.Namespace) -> int:
    entry = _entry(args)
    if not args.no_check:
        refused = _check(args.registry, entry, args.insecure)
        if refused is not None:
            print(f"berth login: {refused}", file=sys.stderr)
            return 1
    Store().put(args.registry, entry)
    written = use_helper(args.registry)
    print(f"{args.registry}: credentials from docker-credential-berth ({entry.method}); {written} names it")
    print("Login Succeeded" if not args.no_check else "Not checked")
    return 0


def run_logout(args: argparse.Namespace) -> int:
    if not Store().remove(args.registry):
        print(f"berth logout: not logged in to {args.registry}", file=sys.stderr)
        return 1
    print(f"forgot {args.registry} (its credHelpers entry in {docker_config_path()} stays; "
          "the helper now answers that it has nothing)")
    return 0
