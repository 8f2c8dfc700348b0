"""boto3 clients, created on first use: importing boto3 at cold start costs ~230 ms, and a
client built at import time ~400 ms more. Domain code receives an AwsClients, never a global."""

from __future__ import annotations

import threading
from typing import Any


class AwsClients:
    def __init__(self, region: str | None = None) -> None:
        self._region = region
        self._lock = threading.Lock()
        self._made: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        client = self._made.get(service)
        if client is None:
            with self._lock:
                client = self._made.get(service)
                if client is None:
                    client = self._create(service)
                    self._made[service] = client
        return client

    def _create(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        # SigV4 so presigned URLs work in every region; adaptive retries for throttling.
        config = Config(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 5})
        session: Any = boto3.session.Session()
        return session.client(service, region_name=self._region, config=config)

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
