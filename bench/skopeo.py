"""skopeo, timed: push an OCI layout to a registry, pull it back into a fresh one."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

INSTALL = Path(__file__).absolute().parents[1] / "scripts" / "install-tools"
PUSH_FLAGS = ("--dest-tls-verify=false",)
PULL_FLAGS = ("--src-tls-verify=false",)


def ensure_installed() -> None:
    """skopeo from Debian, as `make test` installs it (scripts/install-tools, needs root)."""
    if shutil.which("skopeo") is None:
        subprocess.run(["bash", str(INSTALL)], check=True)


def copy_command(source: str, destination: str, *flags: str) -> list[str]:
    # --insecure-policy: independent of the machine's /etc/containers/policy.json.
    return ["skopeo", "--insecure-policy", "copy", "--quiet", *flags, source, destination]


def _copy(source: str, destination: str, *flags: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(copy_command(source, destination, *flags), capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"skopeo copy {source} {destination} failed:\n{result.stderr}")
    return elapsed


def push(layout: Path, tag: str, registry: str, repo: str) -> float:
    return _copy(f"oci:{layout}:{tag}", f"docker://{registry}/{repo}:{tag}", *PUSH_FLAGS)


def pull(registry: str, repo: str, tag: str, layout: Path) -> float:
    return _copy(f"docker://{registry}/{repo}:{tag}", f"oci:{layout}:{tag}", *PULL_FLAGS)
