"""boto3 clients, created on first use: importing boto3 at cold start costs ~230 ms, and a
client built at import time ~400 ms more. Domain code receives an AwsClients, never a global.

All clients come from one session, so they share its loaded service models and the one
credentials object they sign with (whose expiry bounds presigned URLs: `credentials_expiry`).
Under Lambda SnapStart, `prepare` builds them before the snapshot and `after_restore` gives
each restored copy credentials of its own (chalicelib/snapstart.py)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any


class AwsClients:
    def __init__(self, region: str | None = None) -> None:
        self._region = region
        self._lock = threading.RLock()
        self._made: dict[str, Any] = {}
        self._core: Any = None  # the botocore session: models, credentials
        self._boto: Any = None  # the boto3 session around it, which builds the clients

    def _client(self, service: str) -> Any:
        client = self._made.get(service)
        if client is None:
            with self._lock:
                client = self._made.get(service)
                if client is None:
                    client = self._create(service)
                    self._made[service] = client
        return client

    def _session(self) -> Any:
        with self._lock:
            if self._boto is None:
                self._start_session()
            return self._boto

    def _start_session(self) -> None:
        """A new session. One made before shares only its loaded service models with it (the
        costly part of building a client), not its credentials."""
        import boto3
        import botocore.session

        _quiet_sdk_logs()
        core = botocore.session.get_session()
        if self._core is not None:
            core.register_component("data_loader", self._core.get_component("data_loader"))
        self._core, self._boto = core, boto3.session.Session(botocore_session=core)

    def _create(self, service: str) -> Any:
        from botocore.config import Config

        # SigV4 so presigned URLs work in every region; adaptive retries for throttling.
        config = Config(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 5})
        return self._session().client(service, region_name=self._region, config=config)

    def prepare(self, services: tuple[str, ...]) -> None:
        """Build these clients now (before a snapshot: what a first request would pay)."""
        for service in services:
            self._client(service)

    def after_restore(self) -> None:
        """A copy restored from a snapshot must not sign with the credentials the snapshot
        holds: they may have expired, and they were the snapshotted environment's. The clients
        it had are built again from a new session, which loads credentials of its own; that
        costs ~13 ms for four clients here (the models stay loaded), against ~110 ms cold."""
        with self._lock:
            built = tuple(self._made)
            self._made.clear()
            if self._boto is not None:
                self._start_session()
        self.prepare(built)

    def credentials_expiry(self) -> float | None:
        """When the credentials the clients sign with expire (epoch seconds), or None when they
        do not say (static keys, or Lambda's environment variables without an expiry). Read
        after any refresh that is due, so it bounds a signature made now."""
        credentials = self._session().get_credentials()
        if credentials is None:
            return None
        credentials.get_frozen_credentials()  # refreshes refreshable credentials near their expiry
        expiry = getattr(credentials, "_expiry_time", None)  # botocore has no public accessor for it
        return expiry.timestamp() if isinstance(expiry, datetime) else None

    @property
    def s3(self) -> Any:
        return self._client("s3")

    @property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @property
    def secretsmanager(self) -> Any:
        return self._client("secretsmanager")

    @property
    def sqs(self) -> Any:
        return self._client("sqs")

    @property
    def events(self) -> Any:
        return self._client("events")


def _quiet_sdk_logs() -> None:
    """At DEBUG, botocore logs every request and response whole: the signing key ring and the
    users' password hashes would reach the logs. The SDK never logs below INFO here, whatever
    level the rest of the registry logs at."""
    for name in ("boto3", "botocore", "urllib3", "s3transfer"):
        sdk = logging.getLogger(name)
        if sdk.level < logging.INFO:  # unset (following the root), or set lower
            sdk.setLevel(logging.INFO)
