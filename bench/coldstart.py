"""Cold start of the Lambda handler: `import app` in fresh processes (what a new Lambda
container pays before its first request), three ways:

- with bytecode caches (.pyc) present: the figure the goal applies to;
- compiled from source, as in a package `chalice package` builds from a clean checkout
  (app.py, chalicelib and chalice's two runtime files, no .pyc: /var/task is read-only, so
  Lambda recompiles them at every cold start);
- the import and then the first request, which imports boto3 and builds the clients (they
  are created lazily, on first use);
- the same first request in a container Lambda SnapStart restored: the before-snapshot hook
  ran after the import (it builds the clients), and the clock starts at the after-restore hook
  (which reseeds `random` and builds the clients again with fresh credentials), so the figure
  is what a restored container pays before answering (chalicelib/snapstart.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import stats

REPO = Path(__file__).absolute().parents[1]

_IMPORT = """
import time
started = time.perf_counter()
import app
print("BENCH", (time.perf_counter() - started) * 1000)
"""

_FIRST_REQUEST = """
import sys, time
from berth.local.apigateway import invoke
started = time.perf_counter()
import app
imported = time.perf_counter()
response = invoke(app.app, "GET", sys.argv[1], [("Accept", "application/vnd.oci.image.manifest.v1+json")], b"")
assert response.status == 200, response.status
print("BENCH", (imported - started) * 1000, (time.perf_counter() - imported) * 1000)
"""

_AFTER_RESTORE = """
import sys, time
from berth.local.apigateway import invoke
from chalicelib import snapstart
import app
snapstart.before_snapshot(app.registry)
restored = time.perf_counter()
snapstart.after_restore(app.registry)
response = invoke(app.app, "GET", sys.argv[1], [("Accept", "application/vnd.oci.image.manifest.v1+json")], b"")
assert response.status == 200, response.status
print("BENCH", (time.perf_counter() - restored) * 1000)
"""

_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


@dataclass
class ColdStart:
    import_ms: list[float]
    from_source_ms: list[float]  # the same import with no .pyc for app.py, chalicelib, chalice
    first_request_ms: list[float]  # the first request after the import, in a fresh process
    restored_request_ms: list[float] = field(default_factory=list)  # after-restore hook + first request
    heaviest_imports: list[tuple[str, float]] = field(default_factory=list)  # top-level, cumulative ms

    @property
    def import_median_ms(self) -> float:
        return stats.median(self.import_ms)

    @property
    def from_source_median_ms(self) -> float:
        return stats.median(self.from_source_ms)

    @property
    def first_request_median_ms(self) -> float:
        return stats.median(self.first_request_ms)

    @property
    def restored_request_median_ms(self) -> float:
        return stats.median(self.restored_request_ms)


def _python(code: str, *args: str, flags: tuple[str, ...] = (), root: Path = REPO,
            bytecode: Path | None = None, write_bytecode: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter. With `bytecode`, .pyc files live in that directory
    (PYTHONPYCACHEPREFIX) rather than in __pycache__ next to the sources."""
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "" if write_bytecode else "1"}
    env.pop("PYTHONPYCACHEPREFIX", None)
    if bytecode is not None:
        env["PYTHONPYCACHEPREFIX"] = str(bytecode)
    return subprocess.run([sys.executable, *flags, "-c", code, *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120, check=True)


def lambda_package(into: Path) -> Path:
    """The Python files `chalice package` puts in the bundle for our code, without .pyc:
    app.py, chalicelib, and chalice's runtime (chalice/app.py and chalice/__init__.py)."""
    import chalice

    shutil.copy2(REPO / "app.py", into / "app.py")
    shutil.copytree(REPO / "chalicelib", into / "chalicelib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    runtime = Path(chalice.__file__).parent
    (into / "chalice").mkdir()
    for name in ("app.py", "__init__.py"):
        shutil.copy2(runtime / name, into / "chalice" / name)
    return into


def heaviest_imports(bytecode: Path, limit: int = 6) -> list[tuple[str, float]]:
    """What `import app` itself imports, heaviest first, in cumulative ms (`python -X importtime`
    lists a module's imports before it, one level deeper)."""
    children: list[tuple[str, float]] = []
    for line in _python("import app", flags=("-X", "importtime"), bytecode=bytecode).stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if not match:
            continue
        depth = (len(match.group(3)) - 1) // 2
        if depth == 1:
            children.append((match.group(4), int(match.group(2)) / 1000))
        elif depth == 0:
            if match.group(4) == "app":
                return sorted(children, key=lambda item: item[1], reverse=True)[:limit]
            children = []
    return []


def _ms(result: subprocess.CompletedProcess[str]) -> float:
    """The last figure of the BENCH line (the handler may print its own log lines)."""
    line = next(line for line in reversed(result.stdout.splitlines()) if line.startswith("BENCH "))
    return float(line.split()[-1])


def measure(runs: int, manifest_target: str) -> ColdStart:
    """`runs` fresh processes for each figure, interleaved. The bytecode the cached figures
    read is written by one untimed run into a temporary directory (whatever
    PYTHONDONTWRITEBYTECODE says, and without touching the repository's __pycache__)."""
    import_ms, from_source_ms, first_ms, restored_ms = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp:
        bytecode, package = Path(tmp) / "pycache", Path(tmp) / "package"
        package.mkdir()
        lambda_package(package)
        _python(_IMPORT, bytecode=bytecode, write_bytecode=True)
        _python(_FIRST_REQUEST, manifest_target, bytecode=bytecode, write_bytecode=True)
        for _ in range(runs):
            import_ms.append(_ms(_python(_IMPORT, bytecode=bytecode)))
            from_source_ms.append(_ms(_python(_IMPORT, root=package)))
            first_ms.append(_ms(_python(_FIRST_REQUEST, manifest_target, bytecode=bytecode)))
            restored_ms.append(_ms(_python(_AFTER_RESTORE, manifest_target, bytecode=bytecode)))
        heaviest = heaviest_imports(bytecode)
    return ColdStart(import_ms, from_source_ms, first_ms, restored_ms, heaviest)
