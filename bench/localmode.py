"""Berth's local mode in this process, on the bench's tapped moto: the same API Gateway
stand-in and warm Lambda containers `make run` serves (`berth.local.server`), on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

CONTAINERS = 4  # `make run`'s default


@contextmanager
def local_mode() -> Iterator[str]:
    """Yields the registry's host:port. Run after `awsbackend.start()`."""
    from berth.local.server import Containers, LocalRegistry

    server = LocalRegistry(("127.0.0.1", 0), Containers(CONTAINERS))
    thread = threading.Thread(target=server.serve_forever, name="berth-local", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
