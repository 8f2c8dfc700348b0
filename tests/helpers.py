"""Small steps tests share: digests, pushing blobs the ways clients do, reading them back."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

MiB = 1024 * 1024
APP = Path(__file__).resolve().parents[1] / "app.py"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def start_upload(client: Any, repo: str) -> str:
    """POST to open an upload; returns its Location."""
    response = client.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status == 202, response.body
    location: str = response.header("Location")
    assert location, "a 202 to POST .../blobs/uploads/ must carry Location"
    return location


def push_chunked(client: Any, repo: str, data: bytes, chunk: int, with_range: bool = True) -> Any:
    """POST, one PATCH per chunk, then PUT ?digest= with no body: returns the PUT response."""
    location = start_upload(client, repo)
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        headers = {"Content-Range": f"{start}-{start + len(piece) - 1}"} if with_range else {}
        response = client.patch(location, body=piece, headers=headers)
        assert response.status == 202, response.body
        assert response.header("Range") == f"0-{start + len(piece) - 1}"
        location = response.header("Location")
    return client.put(f"{location}?digest={digest_of(data)}")


def fetch_blob(client: Any, repo: str, digest: str) -> bytes:
    """GET the blob like a client: the registry redirects, the bytes come from S3."""
    response = client.get(f"/v2/{repo}/blobs/{digest}")
    assert response.status == 307, response.body
    fetched = requests.get(response.header("Location"), timeout=30)
    assert fetched.status_code == 200
    return fetched.content


def bucket_keys(aws: Any, bucket: str) -> list[str]:
    pages = aws.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def open_multipart_uploads(aws: Any, bucket: str) -> list[str]:
    return [u["UploadId"] for u in aws.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


class AwsCallCounter:
    """Counts the botocore calls made during an action, as `service.Operation`."""

    def __init__(self, *clients: Any) -> None:
        self._clients = clients

    def during(self, action: Any) -> list[str]:
        calls: list[str] = []

        def record(event_name: str, **_: Any) -> None:
            _, service, operation = event_name.split(".")
            calls.append(f"{service}.{operation}")

        for client in self._clients:
            client.meta.events.register("before-call.*.*", record)
        try:
            action()
        finally:
            for client in self._clients:
                client.meta.events.unregister("before-call.*.*", record)
        return calls


def manifest_body(config: str, layers: list[tuple[str, int]],
                  media_type: str = "application/vnd.oci.image.manifest.v1+json", **extra: Any) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}
                   for d, s in layers],
        **extra,
    }
    return json.dumps(doc).encode()


def load_app(registry: Any) -> Any:
    """A fresh copy of app.py (as a new Lambda container loads it), so the authorizer is wired
    for the mode in the environment, serving this test's registry."""
    spec = importlib.util.spec_from_file_location(f"berth_auth_{uuid.uuid4().hex}", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.registry = registry
    return module.app


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler],
            server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer) -> Iterator[int]:
    """A test server of `handler` on a free loopback port, in a thread of its own, until the
    block ends; yields the port."""
    server = server_class(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
