"""Which registry a `berth` admin command works on: the local mode (`--local`, found through
the state file `make run` writes) or a deployed stage (table, bucket and region from flags or
the BERTH_*/AWS_* environment, credentials as boto3 finds them)."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from chalicelib.registry import Registry
from chalicelib.settings import Settings

LOCAL_PORT = 5000


def local_state_path(port: int) -> Path:
    return Path(tempfile.gettempdir()) / f"berth-local-{port}.json"


def write_local_state(port: int, endpoint: str, bucket: str, table: str) -> Path:
    path = local_state_path(port)
    path.write_text(json.dumps({"endpoint": endpoint, "bucket": bucket, "table": table}))
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("which registry")
    where.add_argument("--local", nargs="?", type=int, const=LOCAL_PORT, metavar="PORT",
                       help=f"the local mode started by `make run` (port {LOCAL_PORT} unless given)")
    where.add_argument("--table", help="DynamoDB table of a deployed stage (default: $BERTH_TABLE)")
    where.add_argument("--bucket", help="S3 bucket of a deployed stage (default: $BERTH_BUCKET)")
    where.add_argument("--region", help="AWS region (default: $AWS_REGION)")
    where.add_argument("--endpoint-url", help="AWS endpoint, e.g. a moto server (default: $AWS_ENDPOINT_URL)")


def registry(args: argparse.Namespace) -> Registry:
    if args.local is not None:
        path = local_state_path(args.local)
        if not path.exists():
            raise SystemExit(f"berth: no local registry on port {args.local} (start one with `make run`)")
        state = json.loads(path.read_text())
        os.environ.update({"AWS_ENDPOINT_URL": state["endpoint"], "AWS_ACCESS_KEY_ID": "local",
                           "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"})
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        settings = replace(Settings.from_env(), bucket=state["bucket"], table=state["table"], region="us-east-1")
    else:
        if args.endpoint_url:
            os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
        settings = Settings.from_env()
        settings = replace(settings, table=args.table or settings.table, bucket=args.bucket or settings.bucket,
                           region=args.region or settings.region)
    return Registry.build(settings)
