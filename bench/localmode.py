"""Berth's local mode in this process, on the bench's tapped moto: the same API Gateway
stand-in and warm Lambda containers `make run` serves (`berth.local.server`), on a free port.

With `verify_queue_url`, also the stand-in for the verifier's SQS trigger (`make run` has it),
which direct uploads need: a push of a big layer waits for its verification. Off otherwise,
because it polls the queue all the time and the tap would count those calls in every window.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

CONTAINERS = 4  # `make run`'s default


@contextmanager
def local_mode(verify_queue_url: str | None = None) -> Iterator[str]:
    """Yields the registry's host:port. Run after `awsbackend.start()`."""
    from berth.local.server import Containers, LocalRegistry

    server = LocalRegistry(("127.0.0.1", 0), Containers(CONTAINERS))
    thread = threading.Thread(target=server.serve_forever, name="berth-local", daemon=True)
    thread.start()
    verifier = None
    if verify_queue_url is not None:
        import boto3

        from berth.local.backend import REGION
        from berth.local.verifier import VerifierPoller

        verifier = VerifierPoller(server.containers, boto3.client("sqs", region_name=REGION), verify_queue_url)
        verifier.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        if verifier is not None:
            verifier.stop()
            verifier.join(timeout=10)
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
