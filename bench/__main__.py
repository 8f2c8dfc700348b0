"""`python -m bench` (`make bench`): measure, print the table, write bench/out/latest.json."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.report import Run

OUT = Path(__file__).absolute().parent / "out" / "latest.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="a fifth of the repetitions and fewer runs: a smoke test, not figures to quote")
    parser.add_argument("--no-skopeo", action="store_true",
                        help="skip skopeo against Berth and the reference registry")
    parser.add_argument("--runs", type=int, default=None,
                        help="skopeo runs per registry (default: 5, --quick 2)")
    parser.add_argument("--big", action="store_true",
                        help="also push and pull a 200 MiB and a 1 GiB layer: berth push and pull, skopeo through "
                             "berth relay, skopeo to docker-registry, and GC and purge at 100,000 manifests "
                             "(a few more minutes; `make bench BIG=1`)")
    parser.add_argument("--out", type=Path, default=OUT, help="JSON output (default: bench/out/latest.json)")
    return parser.parse_args(argv)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _tool_version(*command: str) -> str | None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    if result.returncode != 0:
        return None
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else ""


def environment() -> dict[str, Any]:
    repo = Path(__file__).absolute().parents[1]
    commit = _tool_version("git", "-C", str(repo), "rev-parse", "--short", "HEAD") or "?"
    dirty = _tool_version("git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no")
    return {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
        "moto": _version("moto"),
        "boto3": _version("boto3"),
        "chalice": _version("chalice"),
        "skopeo": _tool_version("skopeo", "--version"),
        "docker_registry": _tool_version("docker-registry", "--version"),
    }


class _Discard(io.TextIOBase):
    """Where the handler's stdout goes while measuring: Powertools' JSON request log lines and
    EMF metrics (printed to stdout, as Lambda ships them to CloudWatch) are produced, so they
    cost what they cost deployed, and then dropped."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def measure(args: argparse.Namespace, progress: Callable[[str], None]) -> Run:
    """Every figure of one run, as a `report.Run`."""
    from bench import awsbackend, biglayers, cache, coldstart, goals, lifecycle, operations, report, sidebyside

    env = environment()
    env["mode"] = "quick (a fifth of the repetitions: a smoke test)" if args.quick else "full"
    progress("starting moto and seeding the registry")
    backend = awsbackend.start()
    try:
        bench = operations.prepare(backend)
        progress("per-operation figures")
        results = operations.run_all(bench, 0.2 if args.quick else 1.0, progress)
        progress("cold start")
        cold = coldstart.measure(5 if args.quick else 9, f"/v2/{operations.SEED_REPO}/manifests/{operations.SEED_TAG}")
        side = None
        skipped = "--no-skopeo" if args.no_skopeo else None
        if not args.no_skopeo:
            progress("skopeo: Berth's local mode and the reference registry")
            try:
                side = sidebyside.run(backend, args.runs or (2 if args.quick else 5), progress)
            except Exception as error:  # the rest of the figures still stand
                skipped = f"{type(error).__name__}: {error}"
                progress(f"side by side failed: {skipped}")
        progress("pull-through cache: first and second pull from a token-mode upstream")
        cached, cache_skipped = None, None
        try:
            cached = cache.run(backend, progress)
        except Exception as error:  # the rest of the figures still stand
            cache_skipped = f"{type(error).__name__}: {error}"
            progress(f"pull-through cache failed: {cache_skipped}")
        big, big_skipped = None, None
        if args.big:
            progress("big layers: berth push and pull, skopeo through berth relay, skopeo to the reference")
            try:
                big = biglayers.run(backend, progress)
            except Exception as error:  # the rest of the figures still stand
                big_skipped = f"{type(error).__name__}: {error}"
                progress(f"big layers failed: {big_skipped}")
        progress("GC and purge at 1,000 and 10,000 manifests" + (" and 100,000" if args.big else ""))
        gc_sizes = lifecycle.run(backend, args.big, progress)
        verdicts = goals.verdicts({r.key: r for r in results}, cold)
        env["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
        env["docker_registry"] = _tool_version("docker-registry", "--version")  # may be installed by now
        return report.Run(env, results, cold, side, skipped, verdicts, big, big_skipped, cached, cache_skipped,
                          gc_sizes)
    finally:
        backend.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    os.environ.pop("BERTH_AUTH", None)  # the registry as `make run` serves it: no auth
    # Request logs and metrics on, as deployed (the local mode quiets them by default).
    os.environ["POWERTOOLS_LOG_LEVEL"] = "INFO"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"
    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:5.0f}s] {message}", file=sys.stderr, flush=True)

    with contextlib.redirect_stdout(_Discard()):
        run = measure(args, progress)

    from bench import report

    print(report.render(run))
    report.write_json(run, args.out)
    progress(f"done; figures in {args.out}")


if __name__ == "__main__":
    main()
