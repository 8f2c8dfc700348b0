"""The pull-through cache end to end: the local mode caching from real upstream registries, and
real clients pulling through it.

Upstreams: a second local Berth in token mode (the Docker token flow, for real: a 401
challenge, a token from its realm, blob GETs redirected to its S3) with a pull-only user the
cache logs in as and anonymous pull on `public/*`; and Debian's docker-registry (distribution
2.8.2) with Basic auth (htpasswd) on a filesystem, which serves blob bytes itself. One more
docker-registry is started and stopped by the test that needs an upstream to go down.

Clients: skopeo, and docker (a dockerd of this module's own, started as PLATFORM-NOTES says,
with the cache as its `registry-mirrors` entry for Docker Hub's names).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from berth.target import local_state_path
from tests.e2e import engines
from tests.e2e.conftest import Skopeo
from tests.e2e.distribution import docker_registry, htpasswd_line
from tests.e2e.engines import Docker
from tests.e2e.images import Layout, blobs, sha256
from tests.e2e.test_auth import ADMIN, berth
from tests.local import LocalServer, free_port, local_server

pytestmark = pytest.mark.e2e

PULLER = "puller:pull-secret"  # the cache's account on the Berth upstream: pull only
MIRROR_USER, MIRROR_PASSWORD = "mirror", "mirror-secret"  # the docker-registry upstream's
CREDENTIALS_ENV = "BERTH_E2E_UPSTREAM_CREDENTIALS"
TTL = 6


@dataclass
class Upstreams:
    berth: LocalServer
    registry_port: int
    registry_root: Path  # its storage directory
    down_port: int  # for a docker-registry one test starts and stops


def registry_config(port: int, root: Path, htpasswd: Path | None = None) -> str:
    auth = f"auth:\n  htpasswd:\n    realm: upstream\n    path: {htpasswd}\n" if htpasswd else ""
    return (f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
            f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}")


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    assert shutil.which("docker-registry"), "docker-registry is not installed: run scripts/install-tools"
    env = {"BERTH_AUTH": "token", "BERTH_BOOTSTRAP_USER": ADMIN}
    with local_server(tmp_path_factory.mktemp("upstream-berth"), env=env) as upstream:
        user, password = PULLER.split(":")
        berth(upstream, "user", "add", user, "--password-stdin", "--grant", "team/*=pull", stdin=f"{password}\n")
        berth(upstream, "user", "grant", "anonymous", "public/*", "pull")
        workdir = tmp_path_factory.mktemp("upstream-registry")
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(htpasswd_line(MIRROR_USER, MIRROR_PASSWORD))
        port, root = free_port(), workdir / "storage"
        with docker_registry(registry_config(port, root, htpasswd), port, workdir):
            yield Upstreams(upstream, port, root, free_port())


@pytest.fixture(scope="module")
def cache(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    workdir = tmp_path_factory.mktemp("cache")
    credentials_file = workdir / "registry-credentials.json"
    credentials_file.write_text(json.dumps({"username": MIRROR_USER, "password": MIRROR_PASSWORD}))
    registry = f"http://127.0.0.1:{upstreams.registry_port}"
    rules = {
        "berth/": {"url": f"http://{upstreams.berth.address}", "credentials": {"env": CREDENTIALS_ENV}},
        "short/": {"url": f"http://{upstreams.berth.address}", "ttl_seconds": TTL,
                   "credentials": {"env": CREDENTIALS_ENV}},
        "anon/": {"url": f"http://{upstreams.berth.address}"},
        "dr/": {"url": registry, "credentials": {"file": str(credentials_file)}},
        "down/": {"url": f"http://127.0.0.1:{upstreams.down_port}", "ttl_seconds": 1},
        # Docker Hub mirror mode at the root (here mirroring the docker-registry), and a
        # prefix kept for the registry's own images.
        "": {"url": registry, "credentials": {"file": str(credentials_file)}, "single_names": "library/"},
        "team/": None,
    }
    env = {"BERTH_UPSTREAMS": json.dumps(rules), "BERTH_CACHE_STATS_SECONDS": "0", CREDENTIALS_ENV: PULLER}
    with local_server(workdir, env=env) as server:
        yield server


# ---- helpers ----------------------------------------------------------------------------------

def seed(address: str, repo_tag: str, workdir: Path, creds: str | None, layers: tuple[int, ...] = (3_000, 90_000,
                                                                                                    400_000)
         ) -> tuple[Layout, dict[str, Any]]:
    """An image of random layers pushed to an upstream by skopeo: its layout and descriptor."""
    layout = Layout(workdir / f"src-{os.urandom(4).hex()}")
    descriptor = layout.image(list(layers))
    layout.tag(descriptor, "1")
    args = ["copy", "--dest-tls-verify=false", *(["--dest-creds", creds] if creds else []),
            f"oci:{layout.root}:1", f"docker://{address}/{repo_tag}"]
    result = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return layout, descriptor


def pull(cache: LocalServer, workdir: Path, ref: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = workdir / f"out-{os.urandom(4).hex()}"
    result = Skopeo(cache, workdir).run("copy", "--src-tls-verify=false", f"docker://{cache.address}/{ref}",
                                        f"oci:{out}:1")
    return result, out


def pulled(cache: LocalServer, workdir: Path, ref: str) -> dict[str, bytes]:
    result, out = pull(cache, workdir, ref)
    assert result.returncode == 0, result.stderr
    return blobs(out)


def table(cache: LocalServer) -> tuple[Any, str, Any, str]:
    """The cache's DynamoDB table and S3 bucket, in its moto."""
    state = json.loads(local_state_path(cache.port).read_text())
    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="us-east-1")
    return (session.client("dynamodb", endpoint_url=state["endpoint"]), state["table"],
            session.client("s3", endpoint_url=state["endpoint"]), state["bucket"])


def cached_blobs(cache: LocalServer) -> dict[str, dict[str, Any]]:
    """The cache's blob records by digest (state, key, size)."""
    dynamodb, name, _, _ = table(cache)
    pages = dynamodb.get_paginator("scan").paginate(TableName=name, FilterExpression="begins_with(pk, :p)",
                                                    ExpressionAttributeValues={":p": {"S": "cacheblob#"}})
    return {item["pk"]["S"].split("#", 1)[1]: {k: next(iter(v.values())) for k, v in item.items()}
            for page in pages for item in page["Items"]}


def cached_objects(cache: LocalServer) -> list[str]:
    _, _, s3, bucket = table(cache)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="cache/blobs/")
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def wait_copied(cache: LocalServer, digests: set[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        records = cached_blobs(cache)
        if all(records.get(d, {}).get("state") == "done" for d in digests):
            return
        assert time.monotonic() < deadline, {d: records.get(d, {}).get("state") for d in digests}
        time.sleep(0.2)


def blob_digests(layout: Layout, descriptor: dict[str, Any]) -> set[str]:
    """The config and layers of an image: what a pull copies into the cache."""
    manifest = json.loads((layout.root / "blobs" / "sha256" / descriptor["digest"][7:]).read_bytes())
    return {manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])}


def access_lines(server: LocalServer, since: int) -> list[str]:
    return [line for line in server.log()[since:].splitlines() if " /v2/" in line]


def counters(cache: LocalServer) -> dict[str, int]:
    return dict(json.loads(berth(cache, "stats", "--json"))["cache"])


# ---- skopeo -------------------------------------------------------------------------------------

def test_first_and_second_pull_through_a_token_upstream(cache: LocalServer, upstreams: Upstreams,
                                                        tmp_path: Path) -> None:
    layout, descriptor = seed(upstreams.berth.address, "team/app:1", tmp_path, ADMIN)
    assert pulled(cache, tmp_path, "berth/team/app:1") == blobs(layout.root)
    wait_copied(cache, blob_digests(layout, descriptor))

    since = len(upstreams.berth.log())
    assert pulled(cache, tmp_path, "berth/team/app:1") == blobs(layout.root)
    assert access_lines(upstreams.berth, since) == [], "a second pull within the TTL asks the upstream nothing"


def test_an_anonymous_upstream(cache: LocalServer, upstreams: Upstreams, tmp_path: Path) -> None:
    layout, _ = seed(upstreams.berth.address, "public/tool:1", tmp_path, ADMIN)
    assert pulled(cache, tmp_path, "anon/public/tool:1") == blobs(layout.root)
    # Not anonymously readable upstream: not readable through an anonymous rule either.
    seed(upstreams.berth.address, "team/private:1", tmp_path, ADMIN)
    refused, _ = pull(cache, tmp_path, "anon/team/private:1")
    assert refused.returncode != 0 and "manifest unknown" in refused.stderr.lower()


def test_first_and_second_pull_through_docker_registry_with_basic_auth(cache: LocalServer, upstreams: Upstreams,
                                                                      tmp_path: Path) -> None:
    layout, _ = seed(f"127.0.0.1:{upstreams.registry_port}", "team/lib:1", tmp_path,
                     f"{MIRROR_USER}:{MIRROR_PASSWORD}")
    # It serves blob bytes itself, behind its credentials: the first pull waits for the copies.
    assert pulled(cache, tmp_path, "dr/team/lib:1") == blobs(layout.root)
    assert pulled(cache, tmp_path, "dr/team/lib:1") == blobs(layout.root)


def test_a_tag_moved_upstream_is_seen_after_the_ttl(cache: LocalServer, upstreams: Upstreams,
                                                    tmp_path: Path) -> None:
    skopeo = Skopeo(cache, tmp_path)
    ref = f"docker://{cache.address}/short/team/moving:1"
    _, first = seed(upstreams.berth.address, "team/moving:1", tmp_path, ADMIN, (1_000,))
    assert sha256(skopeo.ok("inspect", "--tls-verify=false", "--raw", ref).encode()) == first["digest"]
    started = time.monotonic()
    _, second = seed(upstreams.berth.address, "team/moving:1", tmp_path, ADMIN, (2_000,))
    if time.monotonic() - started < TTL - 0.5:
        assert sha256(skopeo.ok("inspect", "--tls-verify=false", "--raw", ref).encode()) == first["digest"]
    time.sleep(max(0.0, TTL + 0.5 - (time.monotonic() - started)))
    assert sha256(skopeo.ok("inspect", "--tls-verify=false", "--raw", ref).encode()) == second["digest"]


def test_an_upstream_that_is_down_is_served_stale(cache: LocalServer, upstreams: Upstreams, tmp_path: Path) -> None:
    port = upstreams.down_port
    with docker_registry(registry_config(port, tmp_path / "down-storage"), port, tmp_path):
        layout, descriptor = seed(f"127.0.0.1:{port}", "svc:1", tmp_path, None, (5_000,))
        assert pulled(cache, tmp_path, "down/svc:1") == blobs(layout.root)
        wait_copied(cache, blob_digests(layout, descriptor))
    time.sleep(1.5)  # past the rule's TTL: the cache must ask, and cannot
    assert pulled(cache, tmp_path, "down/svc:1") == blobs(layout.root)
    stale = requests.get(f"http://{cache.address}/v2/down/svc/manifests/1", timeout=30,
                         headers={"Accept": descriptor["mediaType"]})
    assert stale.status_code == 200 and sha256(stale.content) == descriptor["digest"]
    assert stale.headers["Warning"] == '110 berth "Response is Stale"'
    assert "upstream unavailable" in stale.headers["Cache-Status"]
    never = requests.get(f"http://{cache.address}/v2/down/other/manifests/1", timeout=30)
    assert never.status_code == 502 and never.json()["errors"][0]["code"] == "UNKNOWN"


def test_content_that_does_not_match_its_digest_is_refused_and_not_cached(cache: LocalServer, upstreams: Upstreams,
                                                                          tmp_path: Path) -> None:
    registry, creds = f"127.0.0.1:{upstreams.registry_port}", f"{MIRROR_USER}:{MIRROR_PASSWORD}"
    storage = upstreams.registry_root / "docker" / "registry" / "v2" / "blobs" / "sha256"

    def corrupt(digest: str, manifest: bool = False) -> None:
        """The same length, other bytes: only the digest tells. A manifest stays JSON the
        registry can parse (it parses what it serves): the last digit of a size changes."""
        data = storage / digest[7:9] / digest[7:] / "data"
        content = bytearray(data.read_bytes())
        at = len(content) - 1
        if manifest:
            at = content.index(b'"size":') + len(b'"size":')
            while chr(content[at + 1]).isdigit():
                at += 1
            content[at] = ord(str((int(chr(content[at])) + 1) % 10))
        else:
            content[at] ^= 0xFF
        data.write_bytes(bytes(content))

    layout, descriptor = seed(registry, "team/badlayer:1", tmp_path, creds, (20_000,))
    manifest = json.loads((layout.root / "blobs" / "sha256" / descriptor["digest"][7:]).read_bytes())
    layer = manifest["layers"][0]["digest"]
    corrupt(layer)
    refused, _ = pull(cache, tmp_path, "dr/team/badlayer:1")
    assert refused.returncode != 0
    assert cached_blobs(cache).get(layer, {}).get("state") != "done"
    assert not [k for k in cached_objects(cache) if cached_blobs(cache).get(layer, {}).get("key") == k]

    _, manifest = seed(registry, "team/badmanifest:1", tmp_path, creds, (1_000,))
    corrupt(manifest["digest"], manifest=True)
    answer = requests.get(f"http://{cache.address}/v2/dr/team/badmanifest/manifests/1", timeout=30,
                          headers={"Accept": manifest["mediaType"]})
    assert answer.status_code == 502 and answer.json()["errors"][0]["code"] == "DIGEST_INVALID"
    dynamodb, name, _, _ = table(cache)
    assert dynamodb.query(TableName=name, KeyConditionExpression="pk = :pk",
                          ExpressionAttributeValues={":pk": {"S": "cache#dr/team/badmanifest"}})["Items"] == []


def test_concurrent_first_pulls_copy_each_blob_once(cache: LocalServer, upstreams: Upstreams, tmp_path: Path) -> None:
    layout, descriptor = seed(upstreams.berth.address, "team/popular:1", tmp_path, ADMIN)
    before, objects_before = counters(cache), len(cached_objects(cache))
    workdirs = [tmp_path / str(n) for n in range(4)]
    for workdir in workdirs:
        workdir.mkdir()
    with ThreadPoolExecutor(len(workdirs)) as pool:
        results = list(pool.map(lambda workdir: pull(cache, workdir, "berth/team/popular:1"), workdirs))
    for result, out in results:
        assert result.returncode == 0, result.stderr
        assert blobs(out) == blobs(layout.root)
    digests = blob_digests(layout, descriptor)
    wait_copied(cache, digests)
    after = counters(cache)
    config_and_layers = len(digests)
    assert after["copies"] - before["copies"] == config_and_layers
    assert len(cached_objects(cache)) - objects_before == config_and_layers


def test_pushes_under_a_cached_prefix_are_denied_and_own_prefixes_take_them(cache: LocalServer,
                                                                           tmp_path: Path) -> None:
    layout = Layout(tmp_path / "src")
    layout.tag(layout.image([1_000]), "1")
    skopeo = Skopeo(cache, tmp_path)
    refused = skopeo.run("copy", "--dest-tls-verify=false", f"oci:{layout.root}:1", skopeo.ref("berth/team/app:9"))
    assert refused.returncode != 0 and "denied" in refused.stderr.lower()
    skopeo.ok("copy", "--dest-tls-verify=false", f"oci:{layout.root}:1", skopeo.ref("team/own:1"))


def test_berth_stats_and_cache_collect_on_the_local_mode(cache: LocalServer, upstreams: Upstreams,
                                                        tmp_path: Path) -> None:
    layout, _ = seed(upstreams.berth.address, "team/counted:1", tmp_path, ADMIN, (1_000,))
    pulled(cache, tmp_path, "berth/team/counted:1")
    pulled(cache, tmp_path, "berth/team/counted:1")
    text = berth(cache, "stats")
    assert "cache pulls" in text and "cache bytes" in text
    counted = counters(cache)
    assert counted["hits"] > 0 and counted["misses"] > 0 and counted["upstream_requests"] > 0
    assert counted["bytes_saved"] > 0


# ---- docker -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dockerd(cache: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    """A dockerd of this module's own, trusting the cache over plain HTTP and using it as Docker
    Hub's mirror."""
    with engines.dockerd(tmp_path_factory.mktemp("dockerd"), "--insecure-registry", cache.address,
                         "--registry-mirror", f"http://{cache.address}") as docker:
        yield docker


def config_digest(layout: Layout, descriptor: dict[str, Any]) -> str:
    manifest = json.loads((layout.root / "blobs" / "sha256" / descriptor["digest"][7:]).read_bytes())
    return str(manifest["config"]["digest"])


def test_docker_first_and_second_pull(cache: LocalServer, upstreams: Upstreams, dockerd: Docker,
                                      tmp_path: Path) -> None:
    layout, descriptor = seed(upstreams.berth.address, "team/dockered:1", tmp_path, ADMIN)
    ref = f"{cache.address}/berth/team/dockered:1"
    dockerd.ok("pull", ref)
    assert dockerd.ok("image", "inspect", "--format", "{{.Id}}", ref).strip() == config_digest(layout, descriptor)
    wait_copied(cache, blob_digests(layout, descriptor))
    dockerd.ok("rmi", ref)
    since = len(upstreams.berth.log())
    dockerd.ok("pull", ref)
    assert dockerd.ok("image", "inspect", "--format", "{{.Id}}", ref).strip() == config_digest(layout, descriptor)
    assert access_lines(upstreams.berth, since) == []


def test_docker_hub_names_through_the_mirror(cache: LocalServer, upstreams: Upstreams, dockerd: Docker,
                                             tmp_path: Path) -> None:
    """An unchanged `docker pull NAME` goes to the mirror as library/NAME; the root rule takes
    it (here to the docker-registry upstream, standing in for Docker Hub)."""
    name = f"berthmirror{os.urandom(4).hex()}"
    layout, descriptor = seed(f"127.0.0.1:{upstreams.registry_port}", f"library/{name}:1", tmp_path,
                              f"{MIRROR_USER}:{MIRROR_PASSWORD}")
    since = len(cache.log())
    dockerd.ok("pull", f"{name}:1")
    assert dockerd.ok("image", "inspect", "--format", "{{.Id}}", f"{name}:1").strip() == \
        config_digest(layout, descriptor)
    assert any(f"/v2/library/{name}/manifests/1" in line for line in access_lines(cache, since))
