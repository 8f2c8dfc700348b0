"""The per-operation figures: each scenario runs many times through the in-process handler
(`bench.handler`) on the tapped moto, and is measured as a whole.

- AWS calls: botocore `before-call` events on the registry's own clients (`bench.awscalls`);
  the moto tap's count of signed requests in the same window is kept as a cross-check.
- Lambda bytes: request and response bodies that crossed the handler, and what its own S3
  calls moved (bodies sent, objects read back; counted by the tap).
- S3 bytes written: counted by the tap at moto (`bench.awstap`), per blob byte pushed.
- Handler time: the handler call alone, per request; "own" is that minus the time inside
  AWS calls (on AWS, add real DynamoDB/S3 latency per call to "own").
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import stats
from bench.awsbackend import REGION, Backend
from bench.awscalls import AwsCallCounter
from bench.awstap import TapSummary
from bench.client import RegistryClient
from bench.handler import InProcessLambda
from bench.images import Image, MiB, random_image
from berth.local.verifier import deliver
from tests.e2e.images import sha256

SEED_REPO = "bench/seed"
SEED_TAG = "v1"
SEED_TAGS = 20  # the seed repository's tag list
CATALOG_REPOS = 5
CHUNK = 4 * MiB
# Three chunks are one cycle of the upload's rule (a piece; a part holding 1 MiB back; a part):
# whole cycles measure the rate of a long upload, the one bench/floor.py states the floor for.
CHUNKED_SIZE = 6 * CHUNK
DIRECT_SIZE = 64 * MiB  # four 16 MiB parts


@dataclass
class Bench:
    """The handler wired to the tapped moto, a client, and the seeded image reads run on."""

    backend: Backend
    counter: AwsCallCounter
    handler: InProcessLambda
    client: RegistryClient
    seed: Image
    verified: list[tuple[int, float]] = field(default_factory=list)  # the verifier's (bytes, seconds)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    @property
    def seed_layer(self) -> str:
        return sha256(max(self.seed.layers, key=len))


def prepare(backend: Backend) -> Bench:
    """Load the handler as Lambda would (after `awsbackend.start()` set the environment),
    give it clients the counter watches, and seed the registry."""
    import app as app_module
    from chalicelib.registry import Registry
    from chalicelib.settings import Settings
    from chalicelib.storage.clients import AwsClients

    clients = AwsClients(REGION)
    counter = AwsCallCounter()
    counter.attach(clients.s3)
    counter.attach(clients.dynamodb)
    counter.attach(clients.sqs)
    app_module.registry = Registry.build(Settings.from_env(), clients)
    handler = InProcessLambda(app_module.app, counter)
    client = RegistryClient(handler)
    seed = random_image()
    client.push_image(SEED_REPO, SEED_TAG, seed)
    for number in range(1, SEED_TAGS):
        client.put_manifest(SEED_REPO, f"t{number:02d}", seed.manifest)
    for number in range(1, CATALOG_REPOS):
        client.push_image(f"bench/app-{number}", SEED_TAG, seed)
    handler.reset()
    return Bench(backend, counter, handler, client, seed)


# ---- scenarios: each runs one operation and returns the blob bytes it pushed -------------

Action = Callable[[Bench], int]


def _manifest(method: str, by_digest: bool) -> Action:
    def run(b: Bench) -> int:
        b.client.get_manifest(SEED_REPO, b.seed.digest if by_digest else SEED_TAG, method)
        return 0
    return run


def _blob_get(b: Bench) -> int:
    b.client.blob_redirect(SEED_REPO, b.seed_layer)
    return 0


def _blob_head(b: Bench) -> int:
    b.client.blob_head(SEED_REPO, b.seed_layer)
    return 0


def _tags(b: Bench) -> int:
    b.client.tags(SEED_REPO)
    return 0


def _catalog(b: Bench) -> int:
    b.client.catalog()
    return 0


def _mount(b: Bench) -> int:
    b.client.mount(b.unique("bench/mount"), b.seed_layer, SEED_REPO)
    return 0


def _push(b: Bench) -> int:
    image = random_image()
    b.client.push_image("bench/push", b.unique("r"), image)
    return image.blob_bytes


def _pull(b: Bench) -> int:
    b.client.pull_image(SEED_REPO, SEED_TAG, b.seed)
    return 0


def _chunked(b: Bench) -> int:
    b.client.push_chunked("bench/chunked", os.urandom(CHUNKED_SIZE), CHUNK)
    return CHUNKED_SIZE


def _direct(b: Bench) -> int:
    """Parts to S3 by presigned URL, then what Lambda's SQS trigger does with the message S3
    sends: the real verify_blob handler, in this process, its calls counted."""
    import app as app_module

    data = os.urandom(DIRECT_SIZE)
    digest = b.client.push_direct("bench/direct", data)
    started = time.perf_counter()
    deliver(lambda: contextlib.nullcontext(app_module.app), b.backend.client("sqs"), b.backend.local.verify_queue_url)
    b.verified.append((DIRECT_SIZE, time.perf_counter() - started))
    b.client.blob_head("bench/direct", digest)
    return DIRECT_SIZE


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    repetitions: int
    action: Action | None  # None: the path does not exist yet
    warmup: int = 3
    pending: str | None = None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("manifest_get_tag", "manifest GET by tag", 300, _manifest("GET", False)),
    Scenario("manifest_head_tag", "manifest HEAD by tag", 300, _manifest("HEAD", False)),
    Scenario("manifest_get_digest", "manifest GET by digest", 300, _manifest("GET", True)),
    Scenario("manifest_head_digest", "manifest HEAD by digest", 300, _manifest("HEAD", True)),
    Scenario("blob_get", "blob GET (307 to S3)", 300, _blob_get),
    Scenario("blob_head", "blob HEAD", 300, _blob_head),
    Scenario("tags_list", f"tags list ({SEED_TAGS} tags)", 200, _tags),
    Scenario("catalog", f"catalog ({CATALOG_REPOS} repositories)", 200, _catalog),
    Scenario("mount", "cross-repository mount", 200, _mount),
    Scenario("push_image", "push, 3 small layers (skopeo's requests)", 30, _push, warmup=1),
    Scenario("pull_image", "pull of it (skopeo's requests)", 60, _pull, warmup=1),
    Scenario("chunked_push", f"{CHUNKED_SIZE // MiB} MiB blob in {CHUNK // MiB} MiB chunks", 6, _chunked, warmup=1),
    Scenario("direct_push", f"{DIRECT_SIZE // MiB} MiB layer, direct-to-S3 path, verified", 3, _direct, warmup=1),
)


@dataclass
class OperationResult:
    key: str
    name: str
    repetitions: int
    pending: str | None = None
    requests_per_op: float = 0.0
    calls_per_op: float = 0.0
    calls_constant: bool = True  # every repetition made the same number of calls
    calls_by_operation: dict[str, float] = field(default_factory=dict)
    # per kind of request: how many of them, and their calls by API (both per operation)
    calls_by_request: dict[str, dict[str, Any]] = field(default_factory=dict)
    tap_signed_per_op: float = 0.0  # cross-check: the registry's requests as moto saw them
    client_s3_requests_per_op: float = 0.0  # presigned GETs a client sends after a 307
    handler_ms_median: float = 0.0
    handler_ms_p95: float = 0.0
    own_ms_median: float = 0.0  # handler time not spent waiting on AWS
    lambda_bytes_in_per_op: float = 0.0
    lambda_bytes_out_per_op: float = 0.0
    lambda_s3_bytes_per_op: float = 0.0  # blob bytes the handler sent to S3 or read back from it
    blob_bytes_pushed_per_op: float = 0.0
    s3_bytes_written_per_op: float = 0.0
    s3_written_by_operation: dict[str, float] = field(default_factory=dict)  # bytes per operation
    written_per_pushed: float | None = None
    verify_mb_per_s: float | None = None  # the S3-event verifier's hashing of streamed objects

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def measure(bench: Bench, scenario: Scenario, scale: float = 1.0) -> OperationResult:
    if scenario.action is None:
        return OperationResult(scenario.key, scenario.name, 0, pending=scenario.pending)
    action = scenario.action
    repetitions = max(2, round(scenario.repetitions * scale))
    for _ in range(scenario.warmup):
        action(bench)
    bench.handler.reset()
    bench.verified.clear()
    calls_before = bench.counter.calls()
    mark = bench.backend.tap.mark()
    per_repetition: list[int] = []
    pushed = 0
    for _ in range(repetitions):
        before = sum(bench.counter.calls().values())
        pushed += action(bench)
        per_repetition.append(sum(bench.counter.calls().values()) - before)
    meter = bench.handler.reset()
    calls: Counter[str] = bench.counter.calls() - calls_before
    tap = TapSummary.of(bench.backend.tap.since(mark))
    registry_calls = sum(tap.signed.values())
    own = [total - aws for total, aws in zip(meter.handler_seconds, meter.aws_seconds, strict=True)]
    return OperationResult(
        key=scenario.key,
        name=scenario.name,
        repetitions=repetitions,
        requests_per_op=meter.requests / repetitions,
        calls_per_op=sum(calls.values()) / repetitions,
        calls_constant=len(set(per_repetition)) == 1,
        calls_by_operation={name: count / repetitions for name, count in sorted(calls.items())},
        calls_by_request={
            kind: {"requests": entry.requests / repetitions,
                   "calls": {name: count / repetitions for name, count in sorted(entry.calls.items())}}
            for kind, entry in meter.by_kind.items()
        },
        tap_signed_per_op=registry_calls / repetitions,
        client_s3_requests_per_op=sum(tap.presigned.values()) / repetitions,
        handler_ms_median=stats.median(meter.handler_seconds) * 1000,
        handler_ms_p95=stats.p95(meter.handler_seconds) * 1000,
        own_ms_median=stats.median(own) * 1000,
        lambda_bytes_in_per_op=meter.bytes_in / repetitions,
        lambda_bytes_out_per_op=meter.bytes_out / repetitions,
        lambda_s3_bytes_per_op=tap.carried / repetitions,
        blob_bytes_pushed_per_op=pushed / repetitions,
        s3_bytes_written_per_op=tap.s3_bytes_written / repetitions,
        s3_written_by_operation={name: count / repetitions for name, count in sorted(tap.written.items())},
        written_per_pushed=tap.s3_bytes_written / pushed if pushed else None,
        verify_mb_per_s=(sum(n for n, _ in bench.verified) / MiB / sum(s for _, s in bench.verified)
                         if bench.verified else None),
    )


def run_all(bench: Bench, scale: float = 1.0, progress: Callable[[str], None] = print) -> list[OperationResult]:
    results = []
    for scenario in SCENARIOS:
        progress(f"  {scenario.name}")
        results.append(measure(bench, scenario, scale))
    return results
