"""`python -m bench.localmemory`: what the local mode (`make run`) holds in memory, and how long
it takes to stop. A `python -m berth.local` process stores a small registry's worth of items,
then takes DynamoDB transactions like the ones pushes make (tests/local/moto_load.py) and S3
objects written and deleted; its resident memory is read before and after,
and then SIGTERM is timed. Printed, never asserted (tests/local/test_local_durability.py holds
a loose bound)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

import boto3

from berth.target import local_state_path
from tests.local import local_server
from tests.local.moto_load import small_registry, transactions

MiB = 1024 * 1024


def resident(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.localmemory", description=__doc__)
    parser.add_argument("--transactions", type=int, default=1200)
    parser.add_argument("--objects", type=int, default=200, help="1 MiB objects written and deleted")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir, local_server(Path(workdir)) as server:
        state = json.loads(local_state_path(server.port).read_text())
        options = {"endpoint_url": state["endpoint"], "region_name": "us-east-1",
                   "aws_access_key_id": "local", "aws_secret_access_key": "local"}
        db, s3 = boto3.client("dynamodb", **options), boto3.client("s3", **options)
        table = f"memory-{uuid.uuid4().hex[:8]}"
        small_registry(db, table)
        pid = server.process.pid
        before, started = resident(pid), time.monotonic()
        transactions(db, table, args.transactions)
        took = time.monotonic() - started
        after_transactions = resident(pid)
        for n in range(args.objects):
            s3.put_object(Bucket=state["bucket"], Key=f"bench/{n}", Body=os.urandom(MiB))
            s3.delete_object(Bucket=state["bucket"], Key=f"bench/{n}")
        after_objects = resident(pid)
        stopping = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=600)
        stop = time.monotonic() - stopping
    grown = after_transactions - before
    print(f"resident memory {before / MiB:.0f} MiB with the registry stored; after {args.transactions} transactions "
          f"{after_transactions / MiB:.0f} MiB ({grown / args.transactions / 1024:.0f} KiB each; {took:.1f} s); "
          f"after {args.objects} x 1 MiB objects written and deleted {after_objects / MiB:.0f} MiB")
    print(f"SIGTERM to exit: {stop:.2f} s")


if __name__ == "__main__":
    main()
