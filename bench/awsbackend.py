"""S3 and DynamoDB for the bench: the local mode's own moto (`berth.local.backend.start()`,
so the environment is exactly what `make run` sets), with a `RequestTap` put in front of it
so every request moto serves is recorded, whoever sends it (the registry's boto3 clients,
docker-registry, skopeo following a presigned URL).

Like `berth.local.backend.start()`, `start()` points this process's environment at moto, so
it runs before `app` is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.awstap import RequestTap
from berth.local import backend as local_backend
from berth.local.provision import create_bucket

REGION = local_backend.REGION


@dataclass
class Backend:
    endpoint: str
    bucket: str
    table: str
    tap: RequestTap
    local: local_backend.Backend

    def client(self, service: str) -> Any:
        """A boto3 client on moto, for the bench's own set-up (never counted as the registry's)."""
        import boto3

        session: Any = boto3.session.Session()
        return session.client(service, region_name=REGION, endpoint_url=self.endpoint)

    def create_bucket(self, name: str) -> None:
        create_bucket(self.client("s3"), name)

    def stop(self) -> None:
        self.local.stop()


def start() -> Backend:
    local = local_backend.start(0)
    # ThreadedMotoServer keeps its werkzeug server private; the server looks its WSGI
    # application up on every request, so wrapping it taps every request from now on.
    wsgi_server = getattr(local.server, "_server", None)
    if wsgi_server is None or not hasattr(wsgi_server, "app"):
        local.stop()
        raise RuntimeError("cannot tap moto: ThreadedMotoServer no longer keeps its server in `_server`")
    tap = RequestTap(wsgi_server.app)
    wsgi_server.app = tap
    return Backend(local.endpoint, local.bucket, local.table, tap, local)
