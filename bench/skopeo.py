"""skopeo, timed: push an OCI layout to a registry, pull it back into a fresh one."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

INSTALL = Path(__file__).absolute().parents[1] / "scripts" / "install-tools"


def ensure_installed() -> None:
    """skopeo from Debian, as `make test` installs it (scripts/install-tools, needs root)."""
    if shutil.which("skopeo") is None:
        subprocess.run(["bash", str(INSTALL)], check=True)


def _copy(source: str, destination: str, *flags: str) -> float:
    started = time.perf_counter()
    # --insecure-policy: independent of the machine's /etc/containers/policy.json.
    result = subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", *flags, source, destination],
                            capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"skopeo copy {source} {destination} failed:\n{result.stderr}")
    return elapsed


def push(layout: Path, tag: str, registry: str, repo: str) -> float:
    return _copy(f"oci:{layout}:{tag}", f"docker://{registry}/{repo}:{tag}", "--dest-tls-verify=false")


def pull(registry: str, repo: str, tag: str, layout: Path) -> float:
    return _copy(f"docker://{registry}/{repo}:{tag}", f"oci:{layout}:{tag}", "--src-tls-verify=false")
