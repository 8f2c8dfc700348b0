"""`berth push docker-daemon:IMAGE` and `berth push podman:IMAGE` (or `containers-storage:`) against
the local mode, with the real engines: the image streams out of the engine into the registry in
bounded memory, the engine pulls it back identical, and what the registry already has is not
sent again. The stream layouts and what is passed over unread: tests/client/test_saved.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Skopeo
from tests.e2e.engines import Docker
from tests.e2e.test_docker import inspect, pull_afresh
from tests.e2e.test_podman import NO_TLS, Podman, local_image
from tests.local import REPO, LocalServer

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
BIG = 64 * MiB
ACCESS = re.compile(r"^\S+ (?P<method>[A-Z]+) (?P<target>\S+) (?P<status>\d{3}) ", re.M)
PEAK = re.compile(r"VmHWM:\s*(\d+) kB")


def berth_push(source: str, dest: str, env: dict[str, str]) -> tuple[str, int]:
    """`berth push` in its own process: the digest printed, and its peak memory (VmHWM, bytes)."""
    script = ("import re, sys\nfrom berth.cli import main\ncode = main(sys.argv[1:])\n"
              f"print('peak', re.search({PEAK.pattern!r}, open('/proc/self/status').read())[1], file=sys.stderr)\n"
              "sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", script, "push", "--quiet", source, dest], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), int(result.stderr.rpartition("peak")[2]) * 1024


def requests_to(registry: LocalServer, since: int, repo: str, until: str) -> list[tuple[str, str]]:
    """(method, target) of the requests logged for `repo` after `since`, once `until` is among them."""
    deadline = time.monotonic() + 10
    while True:
        seen = [(m["method"], m["target"]) for m in ACCESS.finditer(registry.log()[since:])
                if m["target"].startswith(f"/v2/{repo}/")]
        if any(until in target for _, target in seen):
            return seen
        assert time.monotonic() < deadline, f"no {until} in the log"
        time.sleep(0.05)


def uploads(requests: list[tuple[str, str]]) -> list[str]:
    return [target for method, target in requests if method == "POST" and "/blobs/uploads/" in target]


def build(docker: Docker, tmp_path: Path, tag: str, files: dict[str, int], base: str = "scratch") -> dict[str, Any]:
    """`docker build` of an image over `base` with a layer per file of random bytes."""
    work = tmp_path / f"build-{os.urandom(4).hex()}"
    work.mkdir()
    lines = [f"FROM {base}"]
    for name, size in files.items():
        with (work / name).open("wb") as out:
            for start in range(0, size, MiB):
                out.write(os.urandom(min(MiB, size - start)))
        lines.append(f"COPY {name} /{name}")
    (work / "Dockerfile").write_text("\n".join(lines) + "\n")
    docker.ok("build", "-q", "-t", tag, str(work))
    return inspect(docker, tag)


def test_docker_daemon_streams_a_big_image_in_bounded_memory_and_docker_pulls_it_back(
        docker: Docker, registry: LocalServer, tmp_path: Path) -> None:
    built = build(docker, tmp_path, "berth-src/big:1", {"small.txt": 100, "big.bin": BIG})
    ref = f"{registry.address}/src/big:1"
    env = {**os.environ, "DOCKER_HOST": docker.host, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    digest, peak = berth_push("docker-daemon:berth-src/big:1", ref, env)
    print(f"\nberth push docker-daemon: of a {BIG // MiB} MiB layer: peak RSS {peak / MiB:.1f} MiB")
    assert peak < 60 * MiB, f"{peak / MiB:.0f} MiB: the {BIG // MiB} MiB layer must not sit in memory"

    docker.ok("tag", "berth-src/big:1", ref)
    docker.ok("rmi", "berth-src/big:1")
    pulled = pull_afresh(docker, ref)  # docker checks every layer against its diff ID
    assert pulled["Id"] == built["Id"]
    assert pulled["RootFS"]["Layers"] == built["RootFS"]["Layers"]
    assert pulled["RepoDigests"] == [f"{registry.address}/src/big@{digest}"]


def test_docker_daemon_sends_only_what_the_registry_lacks(
        docker: Docker, registry: LocalServer, tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": docker.host, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    base = build(docker, tmp_path, "berth-src/base:1", {"a.bin": 300_000, "b.bin": 6 * MiB})
    berth_push("docker-daemon:berth-src/base:1", f"{registry.address}/src/app:base", env)
    derived = build(docker, tmp_path, "berth-src/app:2", {"c.txt": 1_000}, base="berth-src/base:1")
    assert derived["RootFS"]["Layers"][:2] == base["RootFS"]["Layers"]

    since = len(registry.log())
    digest, _ = berth_push("docker-daemon:berth-src/app:2", f"{registry.address}/src/app:2", env)
    sent = uploads(requests_to(registry, since, "src/app", "/manifests/2"))
    assert len(sent) == 2, sent  # the new layer and the new config, nothing else

    since = len(registry.log())
    again, _ = berth_push("docker-daemon:berth-src/app:2", f"{registry.address}/src/app:3", env)
    assert again == digest
    assert uploads(requests_to(registry, since, "src/app", "/manifests/3")) == []


@pytest.mark.parametrize("transport", ["podman", "containers-storage"])
def test_podman_images_stream_to_the_registry_and_pull_back_identical(
        registry: LocalServer, skopeo: Skopeo, tmp_path: Path, transport: str) -> None:
    podman = Podman(registry, tmp_path / "podman")
    image_id, config = local_image(podman, tmp_path, [3_000, 5 * MiB])
    podman.ok("tag", image_id, "localhost/pm-src/app:1")
    source = f"{transport}:{image_id}" if transport == "podman" else f"{transport}:pm-src/app:1"
    env = {**podman.env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    digest, _ = berth_push(source, f"{registry.address}/pm-src/{transport}:1", env)

    stored = json.loads(skopeo.ok("inspect", NO_TLS, "--raw", skopeo.ref(f"pm-src/{transport}:1")))
    assert stored["config"]["digest"] == f"sha256:{image_id}"
    assert [layer["digest"] for layer in stored["layers"]] == config["rootfs"]["diff_ids"]  # as podman stores them
    other = Podman(registry, tmp_path / "other")
    assert other.pull(f"docker://{other.ref(f'pm-src/{transport}:1')}") == image_id
    assert other.inspect(image_id)["Digest"] == digest

    since = len(registry.log())
    assert berth_push(source, f"{registry.address}/pm-src/{transport}:2", env)[0] == digest
    assert uploads(requests_to(registry, since, f"pm-src/{transport}", "/manifests/2")) == []
