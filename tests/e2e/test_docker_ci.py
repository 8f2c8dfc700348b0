"""Every CI recipe in docs/ci.md's "Images of any size", run as written against dockerd and the
local mode in token mode: a `docker build` of an image with a layer over the 4,456,448-byte
limit, pushed with `berth push docker-daemon:` or through `berth relay` with an unchanged
`docker push`, lands in the registry whole.

The recipes are read from the document itself, so what is tested is what users copy. Each runs
its own commands: a GitHub Actions job's `run` steps (each in a fresh `bash -e`, with the job's
and the step's `env`), a GitLab CI job's `script` (in one `sh -e`, with its `variables`). What the
CI service provides is provided here instead: the checkout (a directory with a Dockerfile), the
Python setup and the berth installation (the step named "Install berth", or `before_script`:
berth is on PATH), the secret (a CI token), the commit (`GITHUB_SHA`, `CI_COMMIT_SHORT_SHA`),
and where things are (`REGISTRY`, `RELAY`, and for Docker-in-Docker `DOCKER_HOST`, a TCP port
forwarded to our dockerd's socket for the length of the test)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import pytest
import yaml

from berth.client import Credentials, RegistryClient
from tests.e2e.engines import DOCKER_CLI, Docker
from tests.e2e.test_auth import ADMIN, berth
from tests.local import REPO, LocalServer, free_port, local_server

pytestmark = pytest.mark.e2e

DOC = REPO / "docs" / "ci.md"
SECTION = "## Images of any size"
BIG = 6 * 1024 * 1024  # over what one request carries
SETUP_STEPS = {"Install berth"}  # what the runner provides here
_SECRET = re.compile(r"\$\{\{\s*secrets\.(\w+)\s*\}\}")


def recipes() -> dict[str, dict[str, Any]]:
    """Every job in the section's YAML blocks: `github-<workflow>`, `gitlab-<job>`."""
    section = DOC.read_text().partition(f"\n{SECTION}\n")[2].split("\n## ")[0]
    jobs: dict[str, dict[str, Any]] = {}
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        doc = yaml.safe_load(block)
        if "jobs" in doc:
            found = {f"github-{doc['name']}": {**job, "kind": "github"} for job in doc["jobs"].values()}
        else:
            found = {f"gitlab-{name}": {**job, "kind": "gitlab"} for name, job in doc.items()}
        assert not set(found) & set(jobs), f"two recipes are called {set(found) & set(jobs)}"
        jobs.update(found)
    return jobs


RECIPES = recipes()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, str]]:
    """The local mode in token mode, and a CI token for `ci`, who may push to `team/*`."""
    env = {"BERTH_AUTH": "token", "BERTH_BOOTSTRAP_USER": ADMIN}
    with local_server(tmp_path_factory.mktemp("berth-ci"), env=env) as server:
        berth(server, "user", "add", "ci", "--password-stdin", "--grant", "team/*=pull,push", stdin="unused\n")
        yield server, berth(server, "token", "create", "ci").strip()


@contextmanager
def tcp_to(unix_socket: Path) -> Iterator[str]:
    """A loopback TCP address forwarded to a unix socket: the engine as Docker-in-Docker serves it."""
    listener = socket.create_server(("127.0.0.1", 0))

    def pump(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while block := source.recv(1 << 20):
                sink.sendall(block)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def accept() -> None:
        with suppress(OSError):
            while True:
                client, _ = listener.accept()
                engine = socket.socket(socket.AF_UNIX)
                engine.connect(str(unix_socket))
                for source, sink in ((client, engine), (engine, client)):
                    threading.Thread(target=pump, args=(source, sink), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def checkout(tmp_path: Path) -> Path:
    """The repository a job builds: a Dockerfile whose second layer is over the limit."""
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "hello.txt").write_text("hello\n")
    (work / "big.bin").write_bytes(os.urandom(BIG))
    (work / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /\nCOPY big.bin /data/\n")
    return work


def environment(job: dict[str, Any], tmp_path: Path, provided: dict[str, str],
                secrets: dict[str, str]) -> dict[str, str]:
    """The job's own variables, then what the CI service and this machine provide."""
    tools = tmp_path / "bin"
    tools.mkdir(exist_ok=True)
    (tools / "docker").unlink(missing_ok=True)
    (tools / "docker").symlink_to(DOCKER_CLI)  # the daemon's own CLI, whatever PATH holds first
    declared = {k: with_secrets(str(v), secrets) for k, v in (job.get("env") or job.get("variables") or {}).items()}
    return {**os.environ, **declared, **provided, "DOCKER_CONFIG": str(tmp_path / "docker-config"),
            "DOCKER_BUILDKIT": "0", "PATH": f"{tools}:{Path(sys.executable).parent}:{os.environ['PATH']}"}


def with_secrets(text: str, secrets: dict[str, str]) -> str:
    text = _SECRET.sub(lambda m: secrets[m.group(1)], text)
    assert "${{" not in text, f"an expression this test cannot provide: {text}"
    return text


def run(command: list[str], env: dict[str, str], cwd: Path) -> None:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{command[-1]}\nfailed:\n{result.stdout}\n{result.stderr}"


def run_github(job: dict[str, Any], env: dict[str, str], secrets: dict[str, str], cwd: Path) -> None:
    ran = 0
    for step in job["steps"]:
        if "uses" in step or step.get("name") in SETUP_STEPS:
            continue
        step_env = {k: with_secrets(str(v), secrets) for k, v in (step.get("env") or {}).items()}
        run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], {**env, **step_env}, cwd)
        ran += 1
    assert ran >= 2


def run_gitlab(job: dict[str, Any], env: dict[str, str], cwd: Path) -> None:
    run(["sh", "-e", "-c", "\n".join(job["script"])], env, cwd)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_the_recipe_pushes_an_image_with_a_layer_over_the_limit(
        name: str, docker: Docker, token_registry: tuple[LocalServer, str], tmp_path: Path) -> None:
    registry, token = token_registry
    job = RECIPES[name]
    work = checkout(tmp_path)
    commit = os.urandom(20).hex()
    relay = f"127.0.0.1:{free_port()}"
    provided = {"REGISTRY": registry.address, "RELAY": relay, "BERTH_PASSWORD": token,
                "GITHUB_SHA": commit, "CI_COMMIT_SHORT_SHA": commit[:8]}
    secrets = {"BERTH_CI_TOKEN": token}
    with tcp_to(docker.socket) if job.get("services") else nullcontext(docker.host) as engine:
        provided["DOCKER_HOST"] = engine  # with a Docker-in-Docker service, its engine over TCP
        env = environment(job, tmp_path, provided, secrets)
        if job["kind"] == "github":
            run_github(job, env, secrets, work)
        else:
            run_gitlab(job, env, work)

    tag = commit[:12] if job["kind"] == "github" else commit[:8]
    built = "app" if "docker-daemon:" in json.dumps(job) else f"{relay}/team/app:{tag}"
    image = json.loads(docker.ok("image", "inspect", built))[0]
    client = RegistryClient(registry.address, credentials=Credentials("ci", token))
    stored = client.repository("team/app").get_manifest(tag).doc
    assert stored["config"]["digest"] == image["Id"]
    assert len(stored["layers"]) == 2
    assert max(layer["size"] for layer in stored["layers"]) > BIG
