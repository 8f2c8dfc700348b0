"""Big layers (`python -m bench --big`): a single-layer image of 200 MiB and one of 1 GiB, pushed
and pulled three ways, one after another, on the bench's tapped moto:

- `berth push` and `berth pull` (subprocesses) against Berth's local mode: the direct upload,
  parts straight to S3, then the registry's verification, which the push waits for;
- skopeo through `berth relay` (a subprocess in front of the same local mode): skopeo sends the
  layer in one request, the relay spools it and sends it on by the direct upload; the pull
  goes through the relay too (blob GETs are redirects to S3, which it passes on);
- skopeo to and from docker-registry 2.8.2 (`reference`), which takes the layer in one request.

Each path pushes a layer of fresh random bytes, so nothing is stored already or mountable,
and pulls it back into an empty layout, checked against what was pushed. Memory: the peak
resident set (VmHWM) of each client process and of the relay (a relay of its own per layer
size). S3 bytes written: the tap, over the push window (verification included).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import localmode, processes, reference, relay, skopeo
from bench.awsbackend import Backend
from bench.awstap import TapRecord, TapSummary, covered
from bench.biglayout import BigImage, big_layout
from bench.images import random_layout
from tests.e2e.images import tagged

MiB = 1024 * 1024
GiB = 1024 * MiB
SIZES = (200 * MiB, GiB)  # random bytes in the layer (its blob is a little larger: tar and gzip framing)
TAG = "1"
TIMEOUT = 900  # seconds for one push or pull: a hung client fails the figures, not the bench
PATHS = {  # key: what the table calls it
    "berth": "berth push / pull",
    "relay": "skopeo via berth relay",
    "reference": "skopeo, docker-registry 2.8.2",
}
# The local mode's stand-in for Lambda's SQS trigger polls all the time; deployed, Lambda
# makes those calls, not the registry, so they are left out of the request counts. (The tap
# names a JSON-protocol service by its target's prefix: AmazonSQS.ReceiveMessage.)
NOT_THE_REGISTRYS = ("amazonsqs.", "sqs.")
# Work S3 does on its side, with no bytes from the client: assembling an object from its parts,
# copying. moto does it in Python, copying the whole object through memory several times
# (about 6 s a GiB on a quiet machine), so the time it takes is reported beside each push.
SERVER_SIDE = ("s3.CompleteMultipartUpload", "s3.UploadPartCopy", "s3.CopyObject")

Progress = Callable[[str], None]


def size_label(size: int) -> str:
    return f"{size // GiB} GiB" if size % GiB == 0 else f"{size // MiB} MiB"


def _registry_calls(counts: Counter[str]) -> dict[str, int]:
    return {name: n for name, n in sorted(counts.items()) if not name.startswith(NOT_THE_REGISTRYS)}


def _busy(tap: TapSummary) -> dict[str, float]:
    return {name: round(seconds, 2) for name, seconds in tap.busy.items() if not name.startswith(NOT_THE_REGISTRYS)}


@dataclass(frozen=True)
class PathResult:
    path: str  # a key of PATHS
    size: int  # one of SIZES
    layer_bytes: int
    blob_bytes_pushed: int  # layer and config
    push: processes.Finished
    pull: processes.Finished
    pushed: TapSummary
    pulled: TapSummary
    push_server_side_seconds: float  # moto serving SERVER_SIDE requests in the push (overlaps once)
    relay_started_rss: int | None = None  # the relay's, once up
    relay_push_peak_rss: int | None = None  # its peak after the push
    relay_peak_rss: int | None = None  # its peak after the push and the pull

    @property
    def push_calls(self) -> dict[str, int]:
        """The registry's own AWS requests in the push, by service.Operation."""
        return _registry_calls(self.pushed.signed)

    @property
    def push_busy(self) -> dict[str, float]:
        """Seconds moto spent serving each S3 and DynamoDB operation of the push (presigned too)."""
        return _busy(self.pushed)

    @property
    def written_per_pushed(self) -> float:
        return self.pushed.s3_bytes_written / self.blob_bytes_pushed

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": size_label(self.size),
            "layer_bytes": self.layer_bytes,
            "blob_bytes_pushed": self.blob_bytes_pushed,
            "push_seconds": round(self.push.seconds, 3),
            "push_moto_server_side_seconds": round(self.push_server_side_seconds, 3),
            "pull_seconds": round(self.pull.seconds, 3),
            "push_mib_per_s": round(self.layer_bytes / MiB / self.push.seconds, 1),
            "pull_mib_per_s": round(self.layer_bytes / MiB / self.pull.seconds, 1),
            "push_client_peak_rss_bytes": self.push.peak_rss,
            "pull_client_peak_rss_bytes": self.pull.peak_rss,
            "relay_started_rss_bytes": self.relay_started_rss,
            "relay_push_peak_rss_bytes": self.relay_push_peak_rss,
            "relay_peak_rss_bytes": self.relay_peak_rss,
            "s3_bytes_written": self.pushed.s3_bytes_written,
            "s3_bytes_written_per_byte_pushed": round(self.written_per_pushed, 4),
            "s3_bytes_written_by_operation": dict(sorted(self.pushed.written.items())),
            "push_aws_requests": self.push_calls,
            "push_presigned_requests": dict(sorted(self.pushed.presigned.items())),
            "push_moto_busy_seconds": self.push_busy,
            "pull_aws_requests": _registry_calls(self.pulled.signed),
            "pull_presigned_requests": dict(sorted(self.pulled.presigned.items())),
            "pull_moto_busy_seconds": _busy(self.pulled),
        }


@dataclass
class BigLayers:
    results: list[PathResult]
    seconds: float  # all of it, layouts and warm-ups included
    reference_skipped: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"sizes_bytes": list(SIZES), "seconds": round(self.seconds, 1),
                "reference_skipped": self.reference_skipped, "runs": [r.as_json() for r in self.results]}


class _Paths:
    """The registries and what each path runs, for one bench."""

    def __init__(self, backend: Backend, berth: str, reference_registry: str | None, workdir: Path) -> None:
        self.backend = backend
        self.berth = berth
        self.reference = reference_registry
        self.workdir = workdir
        # berth push records unfinished uploads under XDG_CACHE_HOME: here, not in the user's home.
        self.env: Mapping[str, str] = {**os.environ, "XDG_CACHE_HOME": str(workdir / "cache")}

    def _window(self, command: Sequence[str]) -> tuple[processes.Finished, list[TapRecord]]:
        mark = self.backend.tap.mark()
        finished = processes.run(command, TIMEOUT, self.env)
        return finished, self.backend.tap.since(mark)

    @staticmethod
    def _berth(*args: str) -> list[str]:
        return [sys.executable, "-m", "berth.cli", *args, "--quiet"]

    def round_trip(self, path: str, size: int, image: BigImage, registry: str, repo: str,
                   relay_process: relay.Relay | None = None) -> PathResult:
        """Push `image` along `path` to `registry`/`repo` and pull it back."""
        target, out = f"{registry}/{repo}:{TAG}", self.workdir / f"{path}-out"
        if path == "berth":
            push_command = self._berth("push", image.reference, target)
            pull_command = self._berth("pull", target, f"oci:{out}:{TAG}")
        else:
            push_command = skopeo.copy_command(image.reference, f"docker://{target}", *skopeo.PUSH_FLAGS)
            pull_command = skopeo.copy_command(f"docker://{target}", f"oci:{out}:{TAG}", *skopeo.PULL_FLAGS)
        push, pushed = self._window(push_command)
        relay_push_peak = relay_process.peak_rss() if relay_process else None
        pull, pulled = self._window(pull_command)
        _check(out, image)
        shutil.rmtree(out)
        server_side = covered((r.started, r.started + r.seconds) for r in pushed if r.name in SERVER_SIDE)
        figures = (path, size, image.layer_bytes, image.blob_bytes, push, pull,
                   TapSummary.of(pushed), TapSummary.of(pulled), server_side)
        if relay_process is None:
            return PathResult(*figures)
        return PathResult(*figures, relay_process.started_rss, relay_push_peak, relay_process.peak_rss())

    def warm_up(self) -> None:
        """A small image to Berth (berth push, skopeo) and to the reference, untimed: the local
        mode's containers have imported boto3 and built their clients, as warm Lambdas have."""
        source = self.workdir / "warm-up"
        random_layout(source, TAG)
        self._window(self._berth("push", f"oci:{source}:{TAG}", f"{self.berth}/bench/warm-up:{TAG}"))
        for registry in [self.berth] + ([self.reference] if self.reference else []):
            self._window(skopeo.copy_command(f"oci:{source}:{TAG}", f"docker://{registry}/bench/warm-up:{TAG}",
                                             *skopeo.PUSH_FLAGS))
        shutil.rmtree(source)

    def one_size(self, size: int, progress: Progress) -> list[PathResult]:
        """Each path in turn, each with a layer of its own."""
        label = size_label(size).replace(" ", "").lower()  # 200mib, 1gib
        registries = {"berth": self.berth, "relay": self.berth, "reference": self.reference}
        results = []
        for path, registry in registries.items():
            if registry is None:
                continue
            source = self.workdir / f"{path}-{label}"
            image = big_layout(source, TAG, size)
            repo = f"big/{path}-{label}"
            if path == "relay":  # a relay of its own per size: its peak is this layer's
                relay_dir = self.workdir / "relay"  # its log, and its spool under it
                relay_dir.mkdir(exist_ok=True)
                with relay.relay(registry, relay_dir) as running:
                    result = self.round_trip(path, size, image, running.address, repo, running)
            else:
                result = self.round_trip(path, size, image, registry, repo)
            shutil.rmtree(source)
            progress(f"  {size_label(size)}, {PATHS[path]}: push {result.push.seconds:.1f} s, "
                     f"pull {result.pull.seconds:.1f} s")
            results.append(result)
        return results


def _check(out: Path, image: BigImage) -> None:
    """The pulled layout names the pushed image and holds its layer, whole."""
    if tagged(out, TAG)["digest"] != image.manifest_digest:
        raise RuntimeError(f"pulled {out} does not name {image.manifest_digest}")
    layer = out / "blobs" / "sha256" / image.layer_digest.removeprefix("sha256:")
    if layer.stat().st_size != image.layer_bytes:
        raise RuntimeError(f"pulled layer {layer} is {layer.stat().st_size} bytes, not {image.layer_bytes}")


def run(backend: Backend, progress: Progress = print) -> BigLayers:
    started = time.monotonic()
    skopeo.ensure_installed()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-big-") as tmp:
        berth = stack.enter_context(localmode.local_mode(backend.local.verify_queue_url))
        skipped = None
        try:
            reference_registry: str | None = stack.enter_context(reference.reference_registry(backend))
        except Exception as error:  # Berth's figures still stand without it
            reference_registry = None
            skipped = str(error) if isinstance(error, reference.Unavailable) else f"{type(error).__name__}: {error}"
            progress(f"  reference registry skipped: {skipped}")
        paths = _Paths(backend, berth, reference_registry, Path(tmp))
        paths.warm_up()
        results = [result for size in SIZES for result in paths.one_size(size, progress)]
    return BigLayers(results, time.monotonic() - started, skipped)
