"""`berth push SRC DEST` and `berth pull SRC DEST`: images into and out of a registry, with
berth.client (docs/client.md). The digest goes to stdout, progress bars to stderr."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from berth.client import (
    Bars,
    ClientError,
    Credentials,
    Progress,
    RegistryClient,
    ResumeStore,
    SavedImage,
    open_source,
    parse_reference,
    pull,
    push,
)
from berth.client.tasks import DEFAULT_PARALLEL, MAX_PARALLEL


def register(subparsers: Any) -> None:
    pusher = subparsers.add_parser(
        "push", help="push an image to a registry: large layers straight to S3, resumable",
        description="Push an image. SRC: oci:DIR[:TAG] or a directory (an OCI layout), oci-archive:FILE[:TAG] (a "
                    "tar of one), docker-archive:FILE[:TAG] (`docker save` output), a file (either archive, told "
                    "apart by its contents), docker://HOST/REPO[:TAG|@DIGEST] (another registry), "
                    "docker-daemon:IMAGE[:TAG] (the Docker engine at $DOCKER_HOST, read as it streams), "
                    "containers-storage:IMAGE[:TAG] or podman:IMAGE[:TAG] (podman's storage, likewise). "
                    "DEST: HOST[:PORT]/REPO[:TAG|@DIGEST]; without a tag, the source's (or latest). "
                    "Prints the digest. Run an interrupted push again to continue it.")
    pusher.add_argument("source", metavar="SRC")
    pusher.add_argument("destination", metavar="DEST")
    pusher.add_argument("--src-creds", metavar="USER[:PASSWORD]", help="credentials for a docker:// source")
    pusher.add_argument("--no-resume", action="store_true", help="neither continue nor record unfinished uploads")
    pusher.set_defaults(run=run_push)

    puller = subparsers.add_parser(
        "pull", help="pull an image into an OCI layout",
        description="Pull an image, with every platform of a multi-platform index, into an OCI layout. SRC: "
                    "HOST[:PORT]/REPO[:TAG|@DIGEST]. DEST: [oci:]DIR[:TAG] (created if missing; TAG defaults to "
                    "the source's). Prints the digest.")
    puller.add_argument("source", metavar="SRC")
    puller.add_argument("destination", metavar="DEST")
    puller.set_defaults(run=run_pull)

    for parser in (pusher, puller):
        parser.add_argument("--creds", metavar="USER[:PASSWORD]",
                            help="for the registry (default: $BERTH_USERNAME and $BERTH_PASSWORD; "
                                 "without :PASSWORD, a prompt asks)")
        parser.add_argument("--plain-http", action="store_true",
                            help="HTTP rather than HTTPS (the default for localhost and 127.0.0.1)")
        parser.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
        parser.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL, metavar="N",
                            help="blobs, and parts of large blobs, in flight at once (default: %(default)s)")
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _credentials(text: str | None, from_env: bool) -> Credentials | None:
    if text is None:
        return Credentials.from_env() if from_env else None
    if ":" not in text:
        return Credentials(text, getpass.getpass(f"Password for {text}: "))
    return Credentials.parse(text)


def _client(host: str, args: argparse.Namespace) -> RegistryClient:
    return RegistryClient(host, credentials=_credentials(args.creds, from_env=True),
                          plain_http=args.plain_http or None, insecure=args.insecure)


def _progress(args: argparse.Namespace) -> Progress:
    return Bars() if not args.quiet and sys.stderr.isatty() else Progress()


def _guarded(action: Callable[[argparse.Namespace], str]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        if not 1 <= args.parallel <= MAX_PARALLEL:
            print(f"berth: --parallel must be 1 to {MAX_PARALLEL}", file=sys.stderr)
            return 2
        try:
            print(action(args))
        except ClientError as error:
            print(f"berth: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"berth: interrupted{'; run the same command again to continue' if args.command == 'push' else ''}",
                  file=sys.stderr)
            return 130
        return 0

    return run


@_guarded
def run_push(args: argparse.Namespace) -> str:
    dest = parse_reference(args.destination)
    source = open_source(args.source, credentials=_credentials(args.src_creds, from_env=False),
                         plain_http=args.plain_http or None, insecure=args.insecure)
    # An engine's image has its digest once it has streamed: a digest in DEST is checked after.
    root = None if isinstance(source, SavedImage) else source.root().digest
    if dest.digest and root and dest.digest != root:
        raise ClientError(f"{args.destination} names {dest.digest}, but the source's digest is {root}")
    tag = dest.tag or (None if dest.digest else source.tag or "latest")
    repository = _client(dest.api_host, args).repository(dest.repository, push=True)
    digest = push(source, repository, tag, parallel=args.parallel, progress=_progress(args),
                  resume=None if args.no_resume else ResumeStore())
    if dest.digest and dest.digest != digest:
        raise ClientError(f"{args.destination} names {dest.digest}, but the source's digest is {digest}")
    return digest


def _layout_argument(text: str) -> tuple[Path, str | None]:
    """`[oci:]DIR[:TAG]`; DIR need not exist yet."""
    text = text.removeprefix("oci:")
    path, colon, tag = text.rpartition(":")
    if colon and tag and "/" not in tag and not Path(text).exists():
        return Path(path), tag
    return Path(text), None


@_guarded
def run_pull(args: argparse.Namespace) -> str:
    ref = parse_reference(args.source)
    layout, tag = _layout_argument(args.destination)
    repository = _client(ref.api_host, args).repository(ref.repository)
    return pull(repository, ref.reference or "latest", layout, tag or ref.tag or (None if ref.digest else "latest"),
                parallel=args.parallel, progress=_progress(args))
