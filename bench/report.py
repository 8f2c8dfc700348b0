"""The printed table and the JSON file (`bench/out/latest.json`) of one run."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.biglayers import PATHS, BigLayers, size_label
from bench.cache import CacheBench
from bench.coldstart import ColdStart
from bench.floor import floor
from bench.goals import Verdict, goal_for
from bench.lifecycle import SizeFigures
from bench.lifecycle import lines as gc_lines
from bench.operations import CHUNK, OperationResult
from bench.sidebyside import Side, SideBySide
from chalicelib.api.request import MAX_REQUEST_BODY


@dataclass
class Run:
    environment: dict[str, Any]
    operations: list[OperationResult]
    cold: ColdStart | None
    side_by_side: SideBySide | None
    side_by_side_skipped: str | None
    verdicts: list[Verdict]
    big_layers: BigLayers | None = None  # `--big` only
    big_layers_skipped: str | None = None
    cache: CacheBench | None = None  # the pull-through cache (docs/cache.md)
    cache_skipped: str | None = None
    gc_sizes: list[SizeFigures] | None = None  # GC and purge at 1,000, 10,000 (and 100,000) manifests

    def as_json(self) -> dict[str, Any]:
        cold = None
        if self.cold is not None:
            cold = {
                "import_ms_median": self.cold.import_median_ms,
                "import_ms": self.cold.import_ms,
                "from_source_ms_median": self.cold.from_source_median_ms,
                "from_source_ms": self.cold.from_source_ms,
                "first_request_ms_median": self.cold.first_request_median_ms,
                "first_request_ms": self.cold.first_request_ms,
                "restored_request_ms_median": self.cold.restored_request_median_ms,
                "restored_request_ms": self.cold.restored_request_ms,
                "heaviest_imports_ms": dict(self.cold.heaviest_imports),
            }
        return {
            "environment": self.environment,
            "operations": [result.as_json() for result in self.operations],
            "cold_start": cold,
            "side_by_side": self.side_by_side.as_json() if self.side_by_side else None,
            "side_by_side_skipped": self.side_by_side_skipped,
            "goals": [verdict.as_json() for verdict in self.verdicts],
            "chunked_written_floor": {str(chunk): round(floor(chunk), 4) for chunk in FLOOR_CHUNKS},
            "big_layers": self.big_layers.as_json() if self.big_layers else None,
            "big_layers_skipped": self.big_layers_skipped,
            "cache": self.cache.as_json() if self.cache else None,
            "cache_skipped": self.cache_skipped,
            "gc_and_purge_by_size": [size.as_json() for size in self.gc_sizes or []],
        }


VERIFY_SECONDS_PER_INVOCATION = 900 - 60
FLOOR_CHUNKS = (CHUNK, MAX_REQUEST_BODY)  # the bench's chunks, and the largest a request carries

def write_json(run: Run, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run.as_json(), indent=2) + "\n")


# ---- formatting ------------------------------------------------------------------------

def size(value: float) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if value >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def number(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 else f"{value:.1f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Columns padded to fit; the first `left` columns left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def by_api(counts: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {number(count)}" for name, count in counts.items()) or "none"


def _verdict_text(verdicts: Sequence[Verdict], goal_key: str) -> str:
    for verdict in verdicts:
        if verdict.goal.key == goal_key:
            return f"{verdict.goal.text()}: {verdict.status}"
    return ""


def operations_lines(results: Sequence[OperationResult], verdicts: Sequence[Verdict]) -> list[str]:
    rows = []
    for r in results:
        goal = goal_for(r.key)
        goal_text = _verdict_text(verdicts, goal.key) if goal else ""
        if r.pending:
            rows.append([r.name, "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", goal_text])
            continue
        calls = number(r.calls_per_op) + ("" if r.calls_constant else "*")
        written = f"{r.written_per_pushed:.2f}" if r.written_per_pushed is not None else "-"
        rows.append([
            r.name, str(r.repetitions), number(r.requests_per_op), calls,
            f"{r.handler_ms_median:.1f}", f"{r.handler_ms_p95:.1f}", f"{r.own_ms_median:.1f}",
            size(r.lambda_bytes_in_per_op), size(r.lambda_bytes_out_per_op), size(r.lambda_s3_bytes_per_op),
            written, goal_text,
        ])
    header = ["operation", "reps", "requests", "AWS calls", "handler ms p50", "p95", "own ms p50",
              "Lambda in", "Lambda out", "Lambda<->S3", "S3 written/pushed", "goal"]
    lines = table(header, rows)
    lines += [f"  {r.name}: {r.pending}" for r in results if r.pending]
    lines.append("")
    lines.append("AWS calls per operation, by API:")
    for r in results:
        if not r.pending:
            lines.append(f"  {r.name}: {by_api(r.calls_by_operation)}")
            if abs(r.tap_signed_per_op - r.calls_per_op) > 1e-9:
                lines.append(f"    (moto saw {number(r.tap_signed_per_op)} registry requests per operation)")
            if r.client_s3_requests_per_op:
                lines.append(f"    + {number(r.client_s3_requests_per_op)} client GETs of presigned S3 URLs")
            if r.requests_per_op > 1:
                for kind, entry in r.calls_by_request.items():
                    lines.append(f"    {number(entry['requests'])} x {kind}: {by_api(entry['calls'])}")
            if r.s3_written_by_operation:
                written = ", ".join(f"{name} {size(count)}" for name, count in r.s3_written_by_operation.items())
                lines.append(f"    S3 bytes written: {written} (for {size(r.blob_bytes_pushed_per_op)} pushed)")
            if r.verify_mb_per_s:
                # A 15-minute invocation stops a minute early (chalicelib/lifecycle/jobs.py).
                per_invocation = r.verify_mb_per_s * (VERIFY_SECONDS_PER_INVOCATION) / 1024
                lines.append(f"    verifier: {r.verify_mb_per_s:.0f} MB/s streamed and hashed here, so one 15-minute "
                             f"invocation verifies about {per_invocation:.0f} GB at this rate; larger blobs continue "
                             "in the next invocation")
    if any(not r.calls_constant for r in results if not r.pending):
        lines.append("  * the number of calls varied between repetitions (mean shown)")
    return lines


def cold_lines(cold: ColdStart, verdicts: Sequence[Verdict]) -> list[str]:
    heaviest = ", ".join(f"{name} {ms:.0f} ms" for name, ms in cold.heaviest_imports)
    return [
        f"  import app (median of {len(cold.import_ms)} fresh processes): {cold.import_median_ms:.1f} ms"
        f"  [{_verdict_text(verdicts, 'cold_import_ms')}]",
        f"  import app compiled from source, as a clean-checkout Lambda package has it (no .pyc): "
        f"{cold.from_source_median_ms:.1f} ms",
        f"  then the first request (manifest GET by tag; imports boto3, builds the clients): "
        f"{cold.first_request_median_ms:.1f} ms",
        f"  the same first request in a container SnapStart restored (after-restore hook included): "
        f"{cold.restored_request_median_ms:.1f} ms",
        f"  what app.py imports, cumulative: {heaviest}",
    ]


def side_lines(side_by_side: SideBySide) -> list[str]:
    sides: list[Side] = [side_by_side.berth] + ([side_by_side.reference] if side_by_side.reference else [])
    rows = []
    for side in sides:
        figures = side.as_json()
        rows.append([
            "Berth (local mode)" if side.name == "berth" else "docker-registry 2.8.2 (S3 driver)",
            f"{figures['push_seconds_median']:.2f}", f"{figures['pull_seconds_median']:.2f}",
            number(figures["push_aws_requests"]), number(figures["pull_aws_requests"]),
            number(figures["pull_presigned_requests"]), f"{figures['s3_bytes_written_per_byte_pushed']:.2f}",
        ])
    header = ["registry", "push s", "pull s", "push AWS requests", "pull AWS requests",
              "pull presigned S3 GETs", "S3 written/pushed"]
    lines = table(header, rows)
    push_ratio, pull_ratio = side_by_side.ratio("push_seconds"), side_by_side.ratio("pull_seconds")
    if push_ratio is not None and pull_ratio is not None:
        lines.append(f"Berth / reference wall time: push {push_ratio:.2f}, pull {pull_ratio:.2f}")
    else:
        lines.append(f"reference registry not run: {side_by_side.skipped}")
    for side in sides:
        lines.append(f"  {side.name} push, by API: {by_api(side.per_run(side.push_calls))}")
        lines.append(f"  {side.name} pull, by API: {by_api(side.per_run(side.pull_calls))}")
    return lines


BUSY_WORTH_SHOWING = 0.5  # seconds


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / (1024 * 1024):.0f}"


def big_lines(big: BigLayers) -> list[str]:
    rows = []
    for r in big.results:
        relay = "-" if r.relay_peak_rss is None else f"{_mib(r.relay_peak_rss)} (idle {_mib(r.relay_started_rss)})"
        rows.append([
            size_label(r.size), PATHS[r.path], f"{r.push.seconds:.1f}", f"{r.push_server_side_seconds:.1f}",
            f"{r.pull.seconds:.1f}", f"{_mib(r.push.peak_rss)} / {_mib(r.pull.peak_rss)}", relay,
            f"{r.written_per_pushed:.2f}",
        ])
    header = ["layer", "path", "push s", "of it moto server-side s", "pull s",
              "client peak MiB push / pull", "relay peak MiB", "S3 written/pushed"]
    lines = table(header, rows, left=2)
    for r in big.results:
        lines.append(f"  {size_label(r.size)}, {PATHS[r.path]}: push by API: {by_api(r.push_calls)}; "
                     f"presigned: {by_api(r.pushed.presigned)}")
        # Where moto itself was slow: the layer's bytes through Python.
        slow = {name: seconds for name, seconds in r.push_busy.items() if seconds >= BUSY_WORTH_SHOWING}
        lines.append(f"    moto busy serving the push: {', '.join(f'{n} {t:.1f} s' for n, t in slow.items()) or '-'}")
    if big.reference_skipped:
        lines.append(f"reference registry not run: {big.reference_skipped}")
    lines.append(f"({big.seconds:.0f} s in all, building the layouts included)")
    return lines


def cache_lines(cache: CacheBench) -> list[str]:
    rows = [[p.name, number(p.handler_requests), number(p.aws_total), size(p.manifest_bytes_out),
             size(p.blob_bytes_out), number(p.upstream_total)] for p in cache.phases]
    lines = table(["phase", "requests", "AWS calls", "Lambda out: manifests", "Lambda out: blobs",
                   "upstream requests"], rows)
    for p in cache.phases:
        lines.append(f"  {p.name}: AWS {by_api(p.aws_calls)}; upstream {by_api(p.upstream_requests)}")
    blobs = sum(p.blob_bytes_out for p in cache.phases)
    second = cache.phase("second pull, within the TTL").upstream_total
    lines += [f"  goal: blob bytes through Lambda 0: {blobs} ({'met' if blobs == 0 else 'MISSED'}); "
              f"upstream requests on a second pull within the TTL 0: {second} "
              f"({'met' if second == 0 else 'MISSED'})"]
    return lines


def goal_lines(verdicts: Sequence[Verdict]) -> list[str]:
    rows = []
    for v in verdicts:
        value = "-" if v.value is None else (f"{v.value:.2f}" if v.goal.unit == "x" else number(v.value))
        status = f"{v.status}: the goal is {v.goal.note}" if v.status == "MISSED" and v.goal.note else v.status
        rows.append([v.goal.figure, value, v.goal.text(), status])
    bounds = ", ".join(f"{floor(chunk):.2f} for {chunk / 1024 / 1024:g} MiB chunks" for chunk in FLOOR_CHUNKS)
    return table(["figure", "value", "goal", "status"], rows) + [
        "Floor of S3 bytes written per byte pushed in chunks through Lambda, the best any arrangement of "
        f"pieces and parts can do (bench/floor.py): {bounds} (the largest a request carries)"]


def render(run: Run) -> str:
    env = run.environment
    lines = [
        f"Berth bench, {env['started']}, commit {env['commit']}, Python {env['python']}, "
        f"moto {env['moto']}, boto3 {env['boto3']}",
        f"{env['mode']} run; {env['machine']}, load average {env['load_average_1min_at_start']} at start, "
        f"{env['load_average_1min_at_end']} at end (times are this machine's, on moto: compare runs, not clouds)",
        "",
        "Per operation: the Lambda handler in this process, every request through the API Gateway "
        "stand-in, on moto (figures per operation; handler ms per request)",
        *operations_lines(run.operations, run.verdicts),
        "",
    ]
    if run.cold is not None:
        lines += ["Cold start", *cold_lines(run.cold, run.verdicts), ""]
    if run.side_by_side is not None:
        runs = run.side_by_side.berth.runs
        lines += [f"skopeo push and pull of a fresh 3-layer image, same moto, median of {runs} runs each",
                  *side_lines(run.side_by_side), ""]
    elif run.side_by_side_skipped:
        lines += [f"skopeo side by side not run: {run.side_by_side_skipped}", ""]
    if run.big_layers is not None:
        lines += ["Big layers: one push and one pull of a fresh single-layer image along each path; peak resident "
                  "memory of the client (berth or skopeo) and of the relay", *big_lines(run.big_layers), ""]
    elif run.big_layers_skipped:
        lines += [f"big layers not run: {run.big_layers_skipped}", ""]
    if run.cache is not None:
        lines += [f"Pull-through cache: a fresh 3-layer image ({size(run.cache.image_bytes)}) pulled through it from "
                  "a token-mode Berth upstream, as skopeo pulls (redirects followed)", *cache_lines(run.cache), ""]
    elif run.cache_skipped:
        lines += [f"pull-through cache not run: {run.cache_skipped}", ""]
    if run.gc_sizes:
        lines += ["GC and purge at any size: one purge and one collection, the same garbage in registries of "
                  "growing size (bench/lifecycle.py)", *gc_lines(run.gc_sizes), ""]
    lines += ["Goals", *goal_lines(run.verdicts)]
    return "\n".join(lines)
