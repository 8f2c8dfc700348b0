"""docker (Debian's 20.10) and ctr (containerd 1.6) against the local mode without auth, as a
user runs them: a three-layer image pushed and pulled back digest for digest, a multi-platform
index pushed by ctr that docker pulls for its own platform, a layer over the limit refused at
once with the message a user can act on, and the same layer pushed through `berth relay`.

Images reach the engines without running anything: `docker load` and `ctr images import` of
archives built in Python (tests/e2e/images.py). Elapsed times are measured where the point is
"no retry loop" and bounded loosely: docker used to retry a refused layer for ~50 s."""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Skopeo
from tests.e2e.engines import Ctr, Docker
from tests.e2e.images import Layout, docker_archive, layer, oci_archive, sha256
from tests.e2e.test_skopeo import access_lines
from tests.local import LocalServer
from tests.relay import MiB, big_layer, relay_process

pytestmark = pytest.mark.e2e

NO_TLS = "--tls-verify=false"
GIVE_UP_SECONDS = 20  # "at once": well below the ~50 s docker 20.10 spent retrying
PLATFORMS = {"x86_64": "amd64", "aarch64": "arm64"}


def load(docker: Docker, tmp_path: Path, ref: str, layers: list[tuple[bytes, str]]) -> str:
    """The image, named `ref`, in the engine: its ID."""
    archive = tmp_path / f"image-{os.urandom(4).hex()}.tar"
    image_id = docker_archive(archive, layers, ref)
    docker.ok("load", "-i", str(archive))
    return image_id


def pushed_digest(output: str) -> str:
    match = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", output)
    assert match, output
    return match.group(1)


def inspect(docker: Docker, ref: str) -> dict[str, Any]:
    return dict(json.loads(docker.ok("image", "inspect", ref))[0])


def pull_afresh(docker: Docker, ref: str) -> dict[str, Any]:
    """`docker pull` of an image the engine no longer has; what the engine then holds."""
    docker.ok("rmi", ref)
    assert docker.run("image", "inspect", ref).returncode != 0
    docker.ok("pull", ref)
    return inspect(docker, ref)


def timed(run: Any, *args: str) -> tuple[Any, float]:
    """What `run(*args)` returned, and how long it took (printed: `pytest -s` shows the figures)."""
    started = time.monotonic()
    result = run(*args)
    elapsed = time.monotonic() - started
    print(f"\n{os.environ.get('PYTEST_CURRENT_TEST', '').split(' ')[0]}: gave up after {elapsed:.2f} s")
    return result, elapsed


def test_docker_pushes_and_pulls_back_three_layers_digest_for_digest(
        docker: Docker, registry: LocalServer, skopeo: Skopeo, tmp_path: Path) -> None:
    layers = [layer(3_000), layer(200_000), layer(1_000_000)]
    ref = f"{registry.address}/dk/app:1"
    image_id = load(docker, tmp_path, ref, layers)
    digest = pushed_digest(docker.ok("push", ref))

    raw = skopeo.ok("inspect", NO_TLS, "--raw", skopeo.ref("dk/app:1")).encode()
    assert sha256(raw) == digest
    stored = json.loads(raw)
    assert stored["config"]["digest"] == image_id
    assert len(stored["layers"]) == 3

    pulled = pull_afresh(docker, ref)
    assert pulled["Id"] == image_id
    assert pulled["RepoDigests"] == [f"{registry.address}/dk/app@{digest}"]
    assert pulled["RootFS"]["Layers"] == [diff_id for _, diff_id in layers]


def test_an_index_ctr_pushes_is_pulled_by_docker_for_its_own_platform(
        docker: Docker, ctr: Ctr, registry: LocalServer, skopeo: Skopeo, tmp_path: Path) -> None:
    own = PLATFORMS[platform.machine()]
    other = next(arch for arch in PLATFORMS.values() if arch != own)
    layout = Layout(tmp_path / "multi")
    images = {own: layout.image([2_000, 30_000], own), other: layout.image([4_000], other)}
    index = layout.index(list(images.values()))
    layout.tag(index, "1")
    name = f"{registry.address}/dk/multi"
    archive = oci_archive(layout.root, tmp_path / "multi.tar")
    ctr.ok("images", "import", "--all-platforms", "--base-name", name, str(archive))
    ctr.ok("images", "push", "--plain-http", f"{name}:1")
    assert sha256(skopeo.ok("inspect", NO_TLS, "--raw", skopeo.ref("dk/multi:1")).encode()) == index["digest"]

    docker.ok("pull", f"{name}:1")
    pulled = inspect(docker, f"{name}:1")
    manifest = json.loads((layout.root / "blobs" / "sha256" / images[own]["digest"][7:]).read_bytes())
    assert pulled["Architecture"] == own
    assert pulled["Id"] == manifest["config"]["digest"]
    assert pulled["RepoDigests"] == [f"{name}@{index['digest']}"]


@pytest.mark.parametrize(("size", "message"), [
    # The function's own refusal, UNSUPPORTED because docker takes that code as final.
    (4_470_000, "unsupported: a request body may carry at most 4456448 bytes; send larger blobs in chunks "
                "(PATCH with Content-Range, each at most 4456448 bytes), or push big layers with `berth push`, "
                "or through `berth relay` with any client"),
    # Past the Lambda event limit: API Gateway's own answer, which no deployment can customise.
    (7 * MiB, 'error parsing HTTP 413 response body: no error details found in HTTP response body: '
              '"{\\"message\\":\\"Request Too Long\\"}"'),
], ids=["function", "gateway"])
def test_docker_gives_up_on_a_layer_over_the_limit_at_once(
        docker: Docker, registry: LocalServer, tmp_path: Path, size: int, message: str) -> None:
    ref = f"{registry.address}/dk/large:{size}"
    load(docker, tmp_path, ref, [layer(size)])
    since = len(registry.log())
    result, seconds = timed(docker.run, "push", ref)
    assert result.returncode != 0
    assert message in result.stderr
    assert seconds < GIVE_UP_SECONDS, seconds
    refused = [(method, status) for method, _, status in access_lines(registry, since, " 413 ") if status == 413]
    assert refused == [("PATCH", 413)]  # one attempt, no retry


def test_ctr_gives_up_on_a_layer_over_the_limit_at_once(ctr: Ctr, registry: LocalServer, tmp_path: Path) -> None:
    """containerd 1.6 writes the whole layer before it reads the answer: before the local mode
    read every body first, as API Gateway does, this push hung forever. ctr 1.6 shows only the
    status line, so no answer can show it the way out."""
    ref = f"{registry.address}/ctr/large:1"
    archive = tmp_path / "large.tar"
    docker_archive(archive, [big_layer(7 * MiB)], ref)
    ctr.ok("images", "import", str(archive))
    result, seconds = timed(ctr.run, "images", "push", "--plain-http", ref)
    assert result.returncode != 0
    assert "unexpected status: 413 Request Entity Too Large" in result.stderr
    assert seconds < GIVE_UP_SECONDS, seconds


def test_docker_and_ctr_push_a_layer_over_the_limit_through_berth_relay(
        docker: Docker, ctr: Ctr, registry: LocalServer, skopeo: Skopeo, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    layers = [layer(2_000), big_layer(12 * MiB)]
    with relay_process(tmp_path, registry.address, spool) as relay:
        image_id = load(docker, tmp_path, f"{relay.address}/dk/big:1", layers)
        docker_digest = pushed_digest(docker.ok("push", f"{relay.address}/dk/big:1"))
        archive = tmp_path / "ctr-big.tar"
        docker_archive(archive, layers, f"{relay.address}/ctr/big:1")
        ctr.ok("images", "import", str(archive))
        ctr.ok("images", "push", "--plain-http", f"{relay.address}/ctr/big:1")
        listed = re.search(r"sha256:[0-9a-f]{64}", ctr.ok("images", "ls", f"name=={relay.address}/ctr/big:1"))
        assert listed
        ctr_digest = listed.group(0)

    # What the relay delivered, read straight from the registry.
    assert sha256(skopeo.ok("inspect", NO_TLS, "--raw", skopeo.ref("dk/big:1")).encode()) == docker_digest
    assert sha256(skopeo.ok("inspect", NO_TLS, "--raw", skopeo.ref("ctr/big:1")).encode()) == ctr_digest
    for name in ("dk/big:1", "ctr/big:1"):
        docker.ok("rmi", "--force", image_id)  # so that the pull fetches (and checks) every layer
        docker.ok("pull", f"{registry.address}/{name}")
        pulled = inspect(docker, f"{registry.address}/{name}")
        assert pulled["Id"] == image_id
        assert pulled["RootFS"]["Layers"] == [diff_id for _, diff_id in layers]
