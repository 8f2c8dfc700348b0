"""`python -m berth.local`: the registry on this machine, as deployed, on moto (`make run`)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType

from berth.local import backend
from berth.local import sts as local_sts
from berth.target import write_local_state


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m berth.local", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5000, help="registry port (default: %(default)s)")
    parser.add_argument("--moto-port", type=int, default=0,
                        help="port of the in-process moto server for S3 and DynamoDB (default: a free one)")
    parser.add_argument("--containers", type=int, default=4,
                        help="Lambda containers, i.e. requests served at once (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.containers < 1:
        parser.error("--containers must be at least 1")
    return args


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # `kill` shuts down as cleanly as Ctrl-C


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("berth_local.access").setLevel(logging.INFO)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's own per-request lines
    # SIGINT too: a shell starts background jobs with it ignored, which Python would keep.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)

    aws = backend.start(args.moto_port)
    # Keyless access: IAM logins are checked by moto's STS behind a signature check, and must
    # name this registry as clients do (docs/auth.md).
    sts = local_sts.start(aws.endpoint)
    os.environ["BERTH_STS_ENDPOINT"] = sts.endpoint
    os.environ.setdefault("BERTH_SERVER_ID", f"{args.host}:{args.port}")
    # Only now: loading app.py reads the environment that backend.start() set.
    from berth.local.scheduler import Scheduler, periods
    from berth.local.server import Containers, LocalRegistry
    from berth.local.verifier import VerifierPoller

    try:
        server = LocalRegistry((args.host, args.port), Containers(args.containers))
    except OSError as err:
        sts.stop()
        aws.stop()
        sys.exit(f"cannot listen on {args.host}:{args.port}: {err}")
    registry = f"{server.server_address[0]!s}:{server.server_address[1]}"
    state = write_local_state(server.server_address[1], aws.endpoint, aws.bucket, aws.table)
    import boto3

    sqs = boto3.client("sqs", region_name=backend.REGION)
    verifier = VerifierPoller(server.containers, sqs, aws.verify_queue_url)
    verifier.start()
    with server.containers.borrow() as app:
        every = periods(app)
    scheduler = Scheduler(server.containers.borrow, every)
    scheduler.run_due()  # the first runs, before the first request (deployed: within the hour)
    scheduler.start()
    # The cache's copier is a Lambda of its own deployed: its own container here, so a pull
    # waiting for a copy never holds the one the copy needs.
    rules = backend.cache_rules()
    copier = VerifierPoller(Containers(1), sqs, os.environ["BERTH_CACHE_QUEUE_URL"], handler="copy_blob") \
        if rules else None
    if copier is not None:
        copier.start()
    auth = backend.bootstrap_user(os.environ.get("BERTH_BOOTSTRAP_USER"))
    print(f"Berth registry on http://{registry}/v2/ (S3 and DynamoDB: moto at {aws.endpoint}, "
          f"bucket {aws.bucket}, table {aws.table}; in memory, gone when stopped)\n"
          f"  auth: {auth}; admin: berth user ... --local {server.server_address[1]}\n"
          f"  scheduled: {', '.join(f'{name} every {seconds // 60} min' for name, seconds in every.items())} "
          f"(each ran once at start)\n"
          f"{rules}"
          f"  push: skopeo copy --dest-tls-verify=false oci:DIR:TAG docker://{registry}/team/app:1\n"
          f"        podman push --tls-verify=false IMAGE {registry}/team/app:1\n"
          f"  pull: skopeo copy --src-tls-verify=false docker://{registry}/team/app:1 oci:OUT:1\n"
          f"  web:  http://{registry}/ui/\n"
          f"Ctrl-C stops it.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.stop()
        verifier.stop()
        if copier is not None:
            copier.stop()
        server.server_close()
        state.unlink(missing_ok=True)
        sts.stop()
        aws.stop()
    print("stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
    # All the registry held was in this process's memory, gone by design once stopped: tearing
    # the heap down object by object would only delay the exit (by minutes for a large one).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
