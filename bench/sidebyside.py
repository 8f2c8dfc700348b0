"""skopeo push and pull of the same kind of image against Berth's local mode and against the
reference registry, both on the bench's moto, alternating run by run so both see the same
machine. Every request moto serves in a push or pull window is counted by the tap: the
registry's own (signed) calls, and skopeo's GETs of presigned URLs.

Each run pushes a fresh random image (so no layer is already there and nothing is mounted)
and pulls it back into an empty OCI layout.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import localmode, reference, skopeo, stats
from bench.awsbackend import Backend
from bench.awstap import TapSummary
from bench.images import random_layout

TAG = "1"
WARMUP = 2  # untimed push+pull per registry first: clients built, caches and connections warm


@dataclass
class Side:
    """One registry's figures over the runs."""

    name: str
    push_seconds: list[float] = field(default_factory=list)
    pull_seconds: list[float] = field(default_factory=list)
    push_calls: Counter[str] = field(default_factory=Counter)  # the registry's AWS requests, summed
    pull_calls: Counter[str] = field(default_factory=Counter)
    pull_presigned: Counter[str] = field(default_factory=Counter)  # skopeo following redirects
    s3_bytes_written: int = 0
    blob_bytes_pushed: int = 0

    @property
    def runs(self) -> int:
        return len(self.push_seconds)

    def per_run(self, counts: Counter[str]) -> dict[str, float]:
        return {name: count / self.runs for name, count in sorted(counts.items())}

    def as_json(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "push_seconds_median": stats.median(self.push_seconds),
            "pull_seconds_median": stats.median(self.pull_seconds),
            "push_seconds": self.push_seconds,
            "pull_seconds": self.pull_seconds,
            "push_aws_requests": sum(self.push_calls.values()) / self.runs,
            "pull_aws_requests": sum(self.pull_calls.values()) / self.runs,
            "pull_presigned_requests": sum(self.pull_presigned.values()) / self.runs,
            "push_by_operation": self.per_run(self.push_calls),
            "pull_by_operation": self.per_run(self.pull_calls),
            "s3_bytes_written_per_byte_pushed": self.s3_bytes_written / self.blob_bytes_pushed,
        }


@dataclass
class SideBySide:
    berth: Side
    reference: Side | None
    skipped: str | None = None  # why the reference did not run

    def ratio(self, attribute: str) -> float | None:
        if self.reference is None:
            return None
        return float(stats.median(getattr(self.berth, attribute)) / stats.median(getattr(self.reference, attribute)))

    def as_json(self) -> dict[str, Any]:
        return {
            "berth": self.berth.as_json(),
            "reference": self.reference.as_json() if self.reference else None,
            "reference_skipped": self.skipped,
            "push_wall_ratio_berth_over_reference": self.ratio("push_seconds"),
            "pull_wall_ratio_berth_over_reference": self.ratio("pull_seconds"),
        }


def _round_trip(backend: Backend, side: Side | None, registry: str, workdir: Path, label: str) -> None:
    """Push a fresh image and pull it back; record it on `side` (None: a warm-up)."""
    source, pulled = workdir / f"{label}-src", workdir / f"{label}-out"
    pushed = random_layout(source, TAG)
    repo = f"bench/{label}"
    mark = backend.tap.mark()
    push_seconds = skopeo.push(source, TAG, registry, repo)
    push = TapSummary.of(backend.tap.since(mark))
    mark = backend.tap.mark()
    pull_seconds = skopeo.pull(registry, repo, TAG, pulled)
    pull = TapSummary.of(backend.tap.since(mark))
    if side is None:
        return
    side.push_seconds.append(push_seconds)
    side.pull_seconds.append(pull_seconds)
    side.push_calls.update(push.signed)
    side.pull_calls.update(pull.signed)
    side.pull_presigned.update(pull.presigned)
    side.s3_bytes_written += push.s3_bytes_written
    side.blob_bytes_pushed += pushed


def run(backend: Backend, runs: int, progress: Callable[[str], None] = print) -> SideBySide:
    skopeo.ensure_installed()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-skopeo-") as tmp:
        workdir = Path(tmp)
        registries = {"berth": stack.enter_context(localmode.local_mode())}
        skipped = None
        try:
            registries["reference"] = stack.enter_context(reference.reference_registry(backend))
        except Exception as error:  # Berth's figures still stand without it
            skipped = str(error) if isinstance(error, reference.Unavailable) else f"{type(error).__name__}: {error}"
            progress(f"  reference registry skipped: {skipped}")
        sides = {name: Side(name) for name in registries}
        for name, registry in registries.items():
            for number in range(WARMUP):
                _round_trip(backend, None, registry, workdir, f"{name}-warmup-{number}")
        for number in range(runs):
            order = list(registries.items())
            if number % 2:
                order.reverse()
            for name, registry in order:
                progress(f"  run {number + 1}/{runs}: {name}")
                _round_trip(backend, sides[name], registry, workdir, f"{name}-{number}")
    return SideBySide(sides["berth"], sides.get("reference"), skipped)
