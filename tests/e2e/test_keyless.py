"""Keyless access end to end: the local mode in token mode, trust rules made with `berth
trust`, and Debian's Docker engine pushing and pulling with credentials from
`docker-credential-berth`: an ID token from a GitHub-Actions-like token service on the
loopback, a signed STS request (moto's STS, behind the local mode's signature check), and a
CI token stored by `docker login`; podman asks the same helper through `credHelpers`.

The dockerd fixture here is this file's own (issue 12 is building a shared one in
tests/e2e; the two can merge): images only, vfs storage, no iptables or bridge, as
PLATFORM-NOTES describes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from berth.target import local_state_path
from tests.e2e.images import Layout
from tests.e2e.test_podman import Podman
from tests.local import LocalServer, local_server
from tests.oidc_issuer import Issuer, serving

pytestmark = pytest.mark.e2e

VENV_BIN = Path(sys.executable).parent  # where docker-credential-berth is installed
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"  # Debian's, matching its dockerd


def berth(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "berth.cli", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, env=env)


def admin(server: LocalServer, *args: str, stdin: str = "") -> str:
    result = berth(*args, "--local", str(server.port), stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with serving() as running:
        running.github_claims = {"repository": "org/app", "ref": "refs/heads/main"}
        yield running


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    env = {"BERTH_AUTH": "token", "BERTH_OIDC_ALLOW_HTTP_LOOPBACK": "1", "BERTH_BOOTSTRAP_USER": "admin:admin-pw"}
    with local_server(tmp_path_factory.mktemp("berth-keyless"), env=env) as server:
        yield server


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Docker engine of our own; its socket's address."""
    assert shutil.which("dockerd"), "dockerd is not installed: run scripts/install-tools (make test does)"
    # Short paths: a unix socket's path is limited to ~108 bytes.
    root = Path(tmp_path_factory.mktemp("dockerd"))
    socket_path = root / "d.sock"
    log = (root / "dockerd.log").open("wb")
    process = subprocess.Popen(
        ["dockerd", "--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none",
         "--data-root", str(root / "data"), "--exec-root", str(root / "exec"), "-H", f"unix://{socket_path}",
         "--pidfile", str(root / "docker.pid")],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    host = f"unix://{socket_path}"
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([DOCKER, "-H", host, "version"], capture_output=True).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not start:\n{(root / 'dockerd.log').read_text(errors='replace')}")
            time.sleep(0.5)
        yield host
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def client_env(tmp_path: Path, dockerd: str, **extra: str) -> dict[str, str]:
    """A shell of a CI job or an engineer: its own docker config and berth config, the helper on PATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "ACTIONS_", "BERTH_")) and k not in ("DOCKER_CONFIG", "DOCKER_HOST")}
    env.update({"PATH": f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}", "DOCKER_HOST": dockerd,
                "DOCKER_CONFIG": str(tmp_path / "docker"), "BERTH_CONFIG_DIR": str(tmp_path / "berth"),
                "HOME": str(tmp_path)})
    env.update(extra)
    return env


def docker(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], env=env, input=stdin, capture_output=True, text=True, timeout=180)


def load_image(env: dict[str, str], tmp_path: Path, ref: str) -> None:
    """An image in the engine, as `docker load` takes it: one layer, its config, manifest.json."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        data = os.urandom(4096)
        info = tarfile.TarInfo("data.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers",
                                    "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()]}}).encode()
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as tar:
        for name, content in (("layer.tar", layer_bytes), ("config.json", config),
                              ("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [ref],
                                                             "Layers": ["layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    loaded = docker(env, "load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr


def push_and_pull(env: dict[str, str], tmp_path: Path, ref: str) -> None:
    load_image(env, tmp_path, ref)
    pushed = docker(env, "push", ref)
    assert pushed.returncode == 0, pushed.stderr + pushed.stdout
    assert docker(env, "rmi", ref).returncode == 0
    pulled = docker(env, "pull", ref)
    assert pulled.returncode == 0, pulled.stderr + pulled.stdout


def test_a_github_actions_job_pushes_with_no_stored_secret(secured: LocalServer, issuer: Issuer, dockerd: str,
                                                           tmp_path: Path) -> None:
    registry = secured.address
    added = admin(secured, "trust", "add", "--issuer", issuer.url, "--audience", registry,
                  "--claim", "repository=org/app", "--claim", "ref=refs/heads/main", "--grant", "team/app=pull,push",
                  "--description", "org/app main")
    rule_id = added.split()[2].rstrip(":")
    assert rule_id in admin(secured, "trust", "list")
    job = client_env(tmp_path, dockerd, ACTIONS_ID_TOKEN_REQUEST_URL=f"{issuer.url}/github?api-version=2.0",
                     ACTIONS_ID_TOKEN_REQUEST_TOKEN=issuer.request_token)

    login = berth("login", "--oidc", registry, env=job)
    assert login.returncode == 0 and "Login Succeeded" in login.stdout, login.stderr
    config = json.loads((tmp_path / "docker" / "config.json").read_text())
    assert config["credHelpers"] == {registry: "berth"} and "auths" not in config
    assert "Secret" not in (tmp_path / "berth" / "credentials.json").read_text()  # nothing secret is stored

    push_and_pull(job, tmp_path, f"{registry}/team/app:1")

    # The same job on another branch: its token's conditions do not hold, so nothing goes in.
    issuer.github_claims = {"repository": "org/app", "ref": "refs/heads/feature"}
    try:
        assert "Login Succeeded" not in berth("login", "--oidc", registry, env=job).stdout
    finally:
        issuer.github_claims = {"repository": "org/app", "ref": "refs/heads/main"}
    admin(secured, "trust", "remove", rule_id)
    assert rule_id not in admin(secured, "trust", "list")
    refused = berth("login", "--oidc", registry, env=job)
    assert refused.returncode != 0 and "refused" in refused.stderr


def test_an_engineer_logs_in_with_an_aws_identity_and_pushes(secured: LocalServer, dockerd: str,
                                                            tmp_path: Path) -> None:
    registry = secured.address
    moto = json.loads(local_state_path(secured.port).read_text())["endpoint"]
    iam = boto3.client("iam", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="local",
                       aws_secret_access_key="local")
    iam.create_user(UserName="dana")
    arn = iam.get_user(UserName="dana")["User"]["Arn"]
    keys = iam.create_access_key(UserName="dana")["AccessKey"]
    admin(secured, "trust", "add", "--aws-principal", arn, "--grant", "team/iam=pull,push")
    engineer = client_env(tmp_path, dockerd, AWS_ACCESS_KEY_ID=keys["AccessKeyId"],
                          AWS_SECRET_ACCESS_KEY=keys["SecretAccessKey"], AWS_DEFAULT_REGION="eu-west-1")

    login = berth("login", "--aws", registry, env=engineer)
    assert login.returncode == 0 and "Login Succeeded" in login.stdout, login.stderr
    stored = (tmp_path / "berth" / "credentials.json").read_text()
    assert keys["SecretAccessKey"] not in stored and keys["AccessKeyId"] not in stored

    push_and_pull(engineer, tmp_path, f"{registry}/team/iam:1")

    # The helper's answer is a signed request, worth nothing with a wrong secret: STS says so.
    wrong = {**engineer, "AWS_SECRET_ACCESS_KEY": "wrong"}
    refused = berth("login", "--aws", registry, env=wrong)
    assert refused.returncode != 0 and "refused" in refused.stderr


def test_docker_login_keeps_what_it_gets_in_the_helper(secured: LocalServer, dockerd: str, tmp_path: Path) -> None:
    registry = secured.address
    admin(secured, "user", "add", "bot", "--password-stdin", "--grant", "team/bot=pull,push", stdin="unused-pw\n")
    token = admin(secured, "token", "create", "bot").strip()
    env = client_env(tmp_path, dockerd)
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"credHelpers": {registry: "berth"}}))

    logged_in = docker(env, "login", "-u", "bot", "--password-stdin", registry, stdin=token)
    assert logged_in.returncode == 0, logged_in.stderr
    assert token not in (tmp_path / "docker" / "config.json").read_text()  # the helper keeps it, not docker
    helper = subprocess.run(["docker-credential-berth", "list"], env=env, capture_output=True, text=True)
    # docker logged in with the OAuth2 flow and handed the helper the refresh token it got
    # (user name "<token>"), which it sends back as an identity token from then on.
    assert json.loads(helper.stdout) == {registry: "<token>"}
    push_and_pull(env, tmp_path, f"{registry}/team/bot:1")
    assert docker(env, "logout", registry).returncode == 0
    assert json.loads(subprocess.run(["docker-credential-berth", "list"], env=env, capture_output=True,
                                     text=True).stdout) == {}


def test_podman_gets_an_id_token_from_the_helper_through_cred_helpers(secured: LocalServer, issuer: Issuer,
                                                                      tmp_path: Path) -> None:
    """podman reads `credHelpers` from its auth file and asks the same helper."""
    assert shutil.which("podman"), "podman is not installed: run scripts/install-tools (make test does)"
    registry = secured.address
    admin(secured, "trust", "add", "--issuer", issuer.url, "--audience", registry, "--claim", "repository=org/app",
          "--grant", "team/podman=pull,push")
    podman = Podman(secured, tmp_path / "podman")
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"credHelpers": {registry: "berth"}}))
    podman.env = client_env(tmp_path, "unused", ACTIONS_ID_TOKEN_REQUEST_URL=f"{issuer.url}/github",
                            ACTIONS_ID_TOKEN_REQUEST_TOKEN=issuer.request_token,
                            REGISTRY_AUTH_FILE=str(auth_file),
                            **{k: v for k, v in podman.env.items() if k.startswith("CONTAINERS_")})
    src = Layout(tmp_path / "src")
    src.tag(src.image([3_000]), "1")
    image = podman.pull(f"oci:{src.root}:1")
    podman.push_ok(image, "team/podman:1")
    refused = podman.push(image, "team/other:1")  # beyond the rule's grants
    assert refused.returncode != 0 and any(w in refused.stderr.lower() for w in ("denied", "unauthorized"))
