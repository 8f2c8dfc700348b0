"""Lambda SnapStart (docs/deploy.md): Lambda runs the API function's initialisation once, when
a version is published, snapshots the process, and starts new containers from that snapshot.

Before the snapshot, the boto3 clients the API uses are built (importing boto3 and loading
service models is most of what a first request otherwise pays). After each restore, what must
not be shared between containers made from one snapshot is renewed: the `random` module's
state (retry jitter would otherwise run in step across containers) and the clients'
credentials (the snapshot's may have expired). Secrets are never read before the snapshot, so
there is no cached secret to renew: the token signing key is fetched on first use, after
restore.

The hooks come from `snapshot_restore_py`, which Lambda's Python 3.12+ runtimes provide; it is
absent elsewhere (this machine, older runtimes), and then nothing is registered."""

from __future__ import annotations

import random

from chalicelib.registry import Registry


def services(registry: Registry) -> tuple[str, ...]:
    """The AWS services a request may call with these settings."""
    settings = registry.settings
    wanted = ["s3", "dynamodb"]
    if settings.auth_mode != "none" and settings.signing_secret_id:
        wanted.append("secretsmanager")
    if registry.events is not None:
        wanted.append("events")
    return tuple(wanted)


def before_snapshot(registry: Registry) -> None:
    from chalicelib.digest import resumable

    registry.clients.prepare(services(registry))
    resumable.available()  # maps libcrypto once, into the snapshot


def after_restore(registry: Registry) -> None:
    random.seed()  # from os.urandom, which is the restored container's own
    registry.clients.after_restore()


def register(registry: Registry) -> bool:
    """Register the hooks with the Lambda runtime; False where there is no runtime to tell."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(before_snapshot, registry)
    register_after_restore(after_restore, registry)
    return True
