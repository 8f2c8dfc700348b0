"""The pull-through cache (docs/cache.md): a fresh 3-layer image pulled through it from a real
upstream, a second Berth (the local mode in a process of its own, token auth, so the token flow
and its S3 redirects are real), the way skopeo pulls: `/v2/`, the manifest, each blob's 307
followed. Measured per phase: the first pull, the copies the copier makes after it, a second
pull within the TTL, and one after it (a tag revalidated with one HEAD).

Per phase: requests to the cache's handler, its AWS calls (its own clients, counted), bytes
its responses carried (the manifest; blobs must be none), and the requests the upstream
received (its access log: token requests and 401s included).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.awsbackend import REGION, Backend
from bench.awscalls import AwsCallCounter
from bench.client import RegistryClient
from bench.handler import InProcessLambda
from bench.images import Image, random_image
from bench.skopeo import copy_command, ensure_installed
from berth.local.verifier import deliver
from tests.e2e.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Layout, sha256
from tests.local import LocalServer, local_server

UPSTREAM_USER = "bench:bench-secret"
CREDENTIALS_ENV = "BERTH_BENCH_UPSTREAM_CREDENTIALS"
REPO, TAG = "bench/app", "1"
PREFIX = "up/"
TTL_SECONDS = 300


@dataclass
class Phase:
    name: str
    handler_requests: int = 0
    aws_calls: dict[str, int] = field(default_factory=dict)
    manifest_bytes_out: int = 0  # what the manifest (and /v2/) responses carried
    blob_bytes_out: int = 0  # what blob responses carried: the goal is none
    upstream_requests: dict[str, int] = field(default_factory=dict)  # by "METHOD kind"

    @property
    def aws_total(self) -> int:
        return sum(self.aws_calls.values())

    @property
    def upstream_total(self) -> int:
        return sum(self.upstream_requests.values())

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "aws_calls_total": self.aws_total, "upstream_requests_total": self.upstream_total}


@dataclass
class CacheBench:
    image_bytes: int
    phases: list[Phase]

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    def as_json(self) -> dict[str, Any]:
        return {"image_bytes": self.image_bytes, "ttl_seconds": TTL_SECONDS,
                "phases": [phase.as_json() for phase in self.phases]}


def _upstream_kind(line: str) -> str | None:
    """`METHOD kind` of an access-log line of the upstream (`HH:MM:SS METHOD target status ms`)."""
    parts = line.split()
    if len(parts) < 4 or not parts[2].startswith(("/v2/", "/token")):
        return None
    target = parts[2].split("?", 1)[0]
    kind = "token" if target == "/token" else "manifest" if "/manifests/" in target else \
        "blob" if "/blobs/" in target else "other"
    return f"{parts[1]} {kind} {parts[3]}"


def _seed(upstream: LocalServer, workdir: Path) -> Image:
    """A random image, pushed to the upstream by skopeo with the admin's credentials."""
    image = random_image()
    layout = Layout(workdir / "seed")
    for blob in image.layers:
        layout.add_blob(blob, OCI_LAYER)
    layout.add_blob(image.config, OCI_CONFIG)
    layout.tag(layout.add_blob(image.manifest, OCI_MANIFEST), TAG)
    command = copy_command(f"oci:{layout.root}:{TAG}", f"docker://{upstream.address}/{REPO}:{TAG}",
                           "--dest-tls-verify=false", "--dest-creds", "admin:admin-secret")
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return image


class _Window:
    """What one phase cost: handler requests and bytes, AWS calls, upstream requests."""

    def __init__(self, name: str, handler: InProcessLambda, counter: AwsCallCounter, upstream: LocalServer) -> None:
        self.phase = Phase(name)
        self._handler, self._counter, self._upstream = handler, counter, upstream

    def __enter__(self) -> _Window:
        self._handler.reset()
        self._calls = self._counter.calls()
        self._log = len(self._upstream.log())
        return self

    def __exit__(self, *_: Any) -> None:
        meter = self._handler.reset()
        self.phase.handler_requests += meter.requests
        self.phase.aws_calls = dict(sorted((self._counter.calls() - self._calls).items()))
        time.sleep(0.2)  # the upstream logs a request after answering it
        kinds = Counter(k for k in map(_upstream_kind, self._upstream.log()[self._log:].splitlines()) if k)
        self.phase.upstream_requests = dict(sorted(kinds.items()))

    def bytes_out(self, manifest: bool) -> int:
        meter = self._handler.reset()
        self.phase.handler_requests += meter.requests
        if manifest:
            self.phase.manifest_bytes_out += meter.bytes_out
        else:
            self.phase.blob_bytes_out += meter.bytes_out
        return meter.bytes_out


def _pull(client: RegistryClient, window: _Window, image: Image) -> None:
    """As skopeo pulls: /v2/, the manifest by tag, each blob's redirect followed and checked."""
    client.version_check()
    client.get_manifest(f"{PREFIX}{REPO}", TAG)
    window.bytes_out(manifest=True)
    for blob in image.blobs:
        url = client.blob_redirect(f"{PREFIX}{REPO}", sha256(blob))
        if client.download(url) != blob:
            raise RuntimeError("a blob pulled through the cache differs from the upstream's")
    window.bytes_out(manifest=False)


def run(backend: Backend, progress: Callable[[str], None]) -> CacheBench:
    """Run after the per-operation figures (it loads an app of its own on the same moto)."""
    from chalicelib.cache.rules import CacheConfig
    from chalicelib.cache.wiring import build_cache
    from chalicelib.registry import Registry
    from chalicelib.settings import Settings
    from chalicelib.storage.clients import AwsClients

    ensure_installed()
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as workdir, \
            local_server(Path(workdir), env={"BERTH_AUTH": "token", "BERTH_BOOTSTRAP_USER": "admin:admin-secret"}
                         ) as upstream:
        user, password = UPSTREAM_USER.split(":")
        subprocess.run([sys.executable, "-m", "berth.cli", "user", "add", user,
                        "--password-stdin", "--grant", "bench/*=pull", "--local", str(upstream.port)],
                       input=f"{password}\n", text=True, check=True, capture_output=True, timeout=60)
        image = _seed(upstream, Path(workdir))
        progress("  upstream seeded; pulling through the cache")

        clients, counter = AwsClients(REGION), AwsCallCounter()
        for service in ("s3", "dynamodb", "sqs", "secretsmanager"):
            counter.attach(getattr(clients, service))
        queue_url = backend.client("sqs").create_queue(QueueName="bench-cache")["QueueUrl"]
        os.environ[CREDENTIALS_ENV] = UPSTREAM_USER
        rules = {PREFIX: {"url": f"http://{upstream.address}", "ttl_seconds": TTL_SECONDS,
                          "credentials": {"env": CREDENTIALS_ENV}}}
        config = CacheConfig.from_env({"BERTH_UPSTREAMS": json.dumps(rules), "BERTH_CACHE_QUEUE_URL": queue_url})
        later = [0.0]  # seconds the cache's clock runs ahead: the TTL passes without waiting for it
        settings = replace(Settings.from_env(), cache=config)
        registry = Registry.build(settings, clients)
        registry = replace(registry, cache=build_cache(config, clients, registry.blobs, settings.table,
                                                       lambda: time.time() + later[0]))
        import app as app_module

        # The handler's module serves this registry for the while (bench.operations does the same).
        serving, app_module.registry = app_module.registry, registry
        try:
            phases = _phases(app_module.app, counter, upstream, image, backend, queue_url, later)
        finally:
            app_module.registry = serving
            os.environ.pop(CREDENTIALS_ENV, None)
        return CacheBench(image.blob_bytes + len(image.manifest), phases)


def _phases(app: Any, counter: AwsCallCounter, upstream: LocalServer, image: Image, backend: Backend,
            queue_url: str, later: list[float]) -> list[Phase]:
    handler = InProcessLambda(app, counter)
    client = RegistryClient(handler)
    phases = []
    with _Window("first pull", handler, counter, upstream) as window:
        _pull(client, window, image)
    phases.append(window.phase)
    with _Window("copies (copy_blob, in the background)", handler, counter, upstream) as window:
        copied = deliver(lambda: contextlib.nullcontext(app), backend.client("sqs"), queue_url, handler="copy_blob")
        if copied != len(image.blobs):
            raise RuntimeError(f"{copied} copies for {len(image.blobs)} blobs")
    phases.append(window.phase)
    with _Window("second pull, within the TTL", handler, counter, upstream) as window:
        _pull(client, window, image)
    phases.append(window.phase)
    later[0] = TTL_SECONDS + 1
    with _Window("pull after the TTL (tag unchanged)", handler, counter, upstream) as window:
        _pull(client, window, image)
    phases.append(window.phase)
    return phases
