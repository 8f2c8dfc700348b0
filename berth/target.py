"""Which registry a `berth` admin command works on: the local mode (`--local`, found through
the state file `make run` writes) or a deployed stage (table, bucket and region from flags or
the BERTH_*/AWS_* environment, credentials as boto3 finds them)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chalicelib.registry import Registry
from chalicelib.settings import Settings

LOCAL_PORT = 5000
WHICH = ("name the registry: --local [PORT] for the one `make run` serves, or --table T --bucket B "
         "--region R for a deployed stage (or set BERTH_TABLE, BERTH_BUCKET and AWS_REGION)")


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
        state = _local_state(args.local)
        os.environ.update({"AWS_ENDPOINT_URL": state["endpoint"], "AWS_ACCESS_KEY_ID": "local",
                           "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"})
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        settings = replace(Settings.from_env(), bucket=state["bucket"], table=state["table"], region="us-east-1")
    else:
        if not (args.table or os.environ.get("BERTH_TABLE")):
            raise SystemExit(f"berth: {WHICH}")
        if args.endpoint_url:
            os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
        settings = Settings.from_env()
        settings = replace(settings, table=args.table or settings.table, bucket=args.bucket or settings.bucket,
                           region=args.region or settings.region)
    return Registry.build(settings)


def _local_state(port: int) -> dict[str, str]:
    """What `make run` on `port` wrote about itself, once it is known to be running: a state
    file a killed one left behind names a moto that is gone, and is removed."""
    path = local_state_path(port)
    start = f"start it with `{f'PORT={port} ' if port != LOCAL_PORT else ''}make run`"
    if not path.exists():
        raise SystemExit(f"berth: no local registry on port {port} ({start})")
    state: dict[str, str] = json.loads(path.read_text())
    endpoint = urlsplit(state["endpoint"])
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 80), timeout=2).close()
    except OSError:
        path.unlink(missing_ok=True)
        raise SystemExit(f"berth: the local registry on port {port} is not running any more (a stopped `make run` "
                         f"left {path}, now removed); {start}") from None
    return state


def explain(error: Exception) -> str | None:
    """What an AWS error means for someone naming a registry, and what to type; None when it
    is not about reaching the registry."""
    from botocore import exceptions as aws

    if isinstance(error, aws.NoRegionError):
        return "no AWS region: add --region R (or set AWS_REGION)"
    if isinstance(error, (aws.NoCredentialsError, aws.PartialCredentialsError)):
        return "no AWS credentials: set AWS_PROFILE, or run `aws configure`"
    if isinstance(error, aws.EndpointConnectionError):
        return f"cannot reach {error.kwargs.get('endpoint_url')}: check --region and --endpoint-url"
    if isinstance(error, aws.ClientError):
        details: Any = error.response.get("Error", {})
        code, message = details.get("Code", "?"), details.get("Message", "")
        hint = {"ResourceNotFoundException": "check --table and --region", "NoSuchBucket": "check --bucket"}.get(code)
        return f"AWS says {code}: {message}" + (f" ({hint})" if hint else "")
    return None
