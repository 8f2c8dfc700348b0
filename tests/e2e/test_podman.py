"""podman against the local mode, as a user would run it: push an image from podman's storage,
pull it back into an empty storage, push a second repository that shares layers, search and
list tags, delete, and a layer too large for one request. podman sends each layer as one
`PATCH` with `Transfer-Encoding: chunked`, unlike skopeo.

Each `Podman` keeps its state in a tmp dir: vfs storage, run state, events, its own
containers.conf, registries.conf, storage.conf (by environment) and signature policy; no global
configuration is read for these or changed. What podman shares machine-wide is its blob-info
cache (/var/lib/containers/cache as root), which is how it knows where a layer it pushed
before lives, and so mounts it. Images come from OCI layouts built by tests/e2e/images.py
(`podman pull oci:DIR:TAG`); podman recompresses layers from its storage when pushing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Skopeo
from tests.e2e.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Descriptor, Layout, layer, sha256
from tests.e2e.test_skopeo import access_lines
from tests.local import LocalServer

pytestmark = pytest.mark.e2e

NO_TLS = "--tls-verify=false"
MiB = 1024 * 1024


class Podman:
    """podman with all of its state under `home`."""

    def __init__(self, registry: LocalServer, home: Path) -> None:
        self.registry = registry
        self.home = home
        home.mkdir(parents=True)
        self.policy = home / "policy.json"
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        (home / "containers.conf").write_text('[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n')
        (home / "registries.conf").write_text("")
        (home / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{home / "storage"}"\nrunroot = "{home / "run"}"\n')
        self.env = {**os.environ, "CONTAINERS_CONF": str(home / "containers.conf"),
                    "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
                    "CONTAINERS_STORAGE_CONF": str(home / "storage.conf")}

    def ref(self, name: str) -> str:
        return f"{self.registry.address}/{name}"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", "--tmpdir", str(self.home / "tmp"), *args], cwd=self.home, env=self.env,
                              capture_output=True, text=True, timeout=60)

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"podman {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout

    def pull(self, source: str) -> str:
        """Pulls `source` (a transport reference) and returns the image ID."""
        return self.ok("pull", "-q", "--signature-policy", str(self.policy), NO_TLS, source).strip()

    def push(self, image: str, name: str) -> subprocess.CompletedProcess[str]:
        return self.run("push", "--signature-policy", str(self.policy), NO_TLS,
                        "--digestfile", str(self.home / "digest"), image, self.ref(name))

    def push_ok(self, image: str, name: str) -> str:
        """Pushes and returns the manifest digest podman reports (--digestfile)."""
        (self.home / "digest").unlink(missing_ok=True)
        result = self.push(image, name)
        assert result.returncode == 0, f"podman push {image} {name} failed:\n{result.stderr}"
        return (self.home / "digest").read_text().strip()

    def inspect(self, image: str) -> dict[str, Any]:
        return dict(json.loads(self.ok("image", "inspect", "--format", "json", image))[0])


PodmanFactory = Callable[[], Podman]


@pytest.fixture
def podman_factory(registry: LocalServer, tmp_path: Path) -> PodmanFactory:
    """A new podman with an empty storage at each call."""
    assert shutil.which("podman"), "podman is not installed: run scripts/install-tools (make test does)"
    made: list[Podman] = []

    def make() -> Podman:
        made.append(Podman(registry, tmp_path / f"podman-{len(made)}"))
        return made[-1]

    return make


@pytest.fixture
def podman(podman_factory: PodmanFactory) -> Podman:
    return podman_factory()


def read_json(layout: Layout, digest: str) -> dict[str, Any]:
    return dict(json.loads((layout.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()))


def image_with_extra_layer(layout: Layout, base: Descriptor, size: int) -> Descriptor:
    """An image holding every layer of `base` and one more."""
    manifest = read_json(layout, base["digest"])
    config = read_json(layout, manifest["config"]["digest"])
    blob, diff_id = layer(size)
    manifest["layers"].append(layout.add_blob(blob, OCI_LAYER))
    config["rootfs"]["diff_ids"].append(diff_id)
    manifest["config"] = layout.add_blob(json.dumps(config).encode(), OCI_CONFIG)
    return layout.add_blob(json.dumps(manifest).encode(), OCI_MANIFEST)


def local_image(podman: Podman, tmp_path: Path, layer_sizes: list[int]) -> tuple[str, dict[str, Any]]:
    """An image built as an OCI layout and pulled into podman's storage: its ID and config."""
    src = Layout(tmp_path / f"src-{os.urandom(4).hex()}")
    manifest = src.image(layer_sizes)
    src.tag(manifest, "1")
    image_id = podman.pull(f"oci:{src.root}:1")
    config_digest = read_json(src, manifest["digest"])["config"]["digest"]
    assert f"sha256:{image_id}" == config_digest
    return image_id, read_json(src, config_digest)


def test_push_then_pull_into_an_empty_storage_keeps_every_digest(
        podman_factory: PodmanFactory, skopeo: Skopeo, tmp_path: Path) -> None:
    podman = podman_factory()
    image_id, config = local_image(podman, tmp_path, [3_000, 200_000, 1_000_000])
    digest = podman.push_ok(image_id, "pm/app:1")

    # What the registry holds: the manifest podman pushed (layers recompressed from storage).
    raw = skopeo.ok("inspect", NO_TLS, "--raw", skopeo.ref("pm/app:1")).encode()
    assert sha256(raw) == digest
    pushed = json.loads(raw)
    assert pushed["config"]["digest"] == f"sha256:{image_id}"
    assert len(pushed["layers"]) == 3

    other = podman_factory()
    assert other.ok("images", "-q") == ""
    assert other.pull(f"docker://{other.ref('pm/app:1')}") == image_id
    info = other.inspect(other.ref("pm/app:1"))
    assert info["Id"] == image_id
    assert info["Digest"] == digest
    assert info["RepoDigests"] == [f"{other.ref('pm/app')}@{digest}"]
    assert info["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
    # By digest too, and the pull agrees with skopeo about the manifest.
    assert other.pull(f"docker://{other.ref('pm/app')}@{digest}") == image_id
    assert json.loads(skopeo.ok("inspect", NO_TLS, skopeo.ref("pm/app:1")))["Layers"] == \
        [layer["digest"] for layer in pushed["layers"]]


def test_second_repository_mounts_the_shared_layers(
        podman_factory: PodmanFactory, skopeo: Skopeo, registry: LocalServer, tmp_path: Path) -> None:
    podman = podman_factory()
    src = Layout(tmp_path / "src")
    base = src.image([3_000, 300_000])
    src.tag(base, "base")
    src.tag(image_with_extra_layer(src, base, 20_000), "derived")
    base_id, derived_id = podman.pull(f"oci:{src.root}:base"), podman.pull(f"oci:{src.root}:derived")
    podman.push_ok(base_id, "pm/base:1")
    base_layers = [layer["digest"] for layer in
                   json.loads(skopeo.ok("inspect", NO_TLS, "--raw", skopeo.ref("pm/base:1")))["layers"]]

    since = len(registry.log())
    digest = podman.push_ok(derived_id, "pm-other/derived:1")
    requests = access_lines(registry, since, "PUT /v2/pm-other/derived/manifests/1")
    mounted = [m.group(1) for method, target, status in requests
               if method == "POST" and status == 201 and target.startswith("/v2/pm-other/derived/blobs/uploads/?")
               and "from=pm/base" in target
               and (m := re.search(r"mount=(sha256:[0-9a-f]{64})", target))]
    uploaded = [m.group(1) for method, target, _ in requests if method == "PUT"
                and (m := re.search(r"^/v2/pm-other/derived/blobs/uploads/.*digest=(sha256:[0-9a-f]{64})", target))]
    assert sorted(mounted) == sorted(base_layers)
    assert not set(uploaded) & set(base_layers)

    derived = json.loads(skopeo.ok("inspect", NO_TLS, "--raw", skopeo.ref("pm-other/derived:1")))
    assert [layer["digest"] for layer in derived["layers"]][:2] == base_layers
    other = podman_factory()
    assert other.pull(f"docker://{other.ref('pm-other/derived:1')}") == derived_id
    assert other.inspect(derived_id)["Digest"] == digest


def test_search_and_list_tags(podman: Podman, skopeo: Skopeo, tmp_path: Path) -> None:
    image_id, _ = local_image(podman, tmp_path, [1_000])
    for tag in ("1", "2", "latest"):
        podman.push_ok(image_id, f"pm/listed:{tag}")

    listing = json.loads(podman.ok("search", NO_TLS, "--list-tags", "--format", "json", podman.ref("pm/listed")))
    assert listing == [{"Name": podman.ref("pm/listed"), "Tags": ["1", "2", "latest"]}]
    found = podman.ok("search", NO_TLS, "--format", "{{.Name}}", podman.ref("listed")).split()
    assert found == [podman.ref("pm/listed")]
    assert json.loads(skopeo.ok("list-tags", NO_TLS, skopeo.ref("pm/listed")))["Tags"] == ["1", "2", "latest"]


def test_deleted_image_can_no_longer_be_pulled(podman_factory: PodmanFactory, skopeo: Skopeo, tmp_path: Path) -> None:
    podman = podman_factory()
    image_id, _ = local_image(podman, tmp_path, [1_000])
    digest = podman.push_ok(image_id, "pm/doomed:1")
    skopeo.ok("delete", NO_TLS, skopeo.ref(f"pm/doomed@{digest}"))

    other = podman_factory()
    for ref in ("pm/doomed:1", f"pm/doomed@{digest}"):
        result = other.run("pull", "--signature-policy", str(other.policy), NO_TLS, f"docker://{other.ref(ref)}")
        assert result.returncode != 0
        assert "manifest unknown" in result.stderr
    assert other.ok("images", "-q") == ""


@pytest.mark.parametrize(("size", "message"), [
    # Reaches the function, which refuses a body over 4,456,448 bytes.
    (4_470_000, "unsupported: a request body may carry at most 4456448 bytes; send larger blobs in chunks"),
    # Cannot fit in a Lambda event at all: API Gateway's own answer, which cannot be customised.
    (5 * MiB, 'StatusCode: 413, {"message":"Request Too Long"}'),
], ids=["over-body-limit", "over-payload-limit"])
def test_layer_too_large_for_one_request_is_refused_with_the_registry_message(
        podman: Podman, skopeo: Skopeo, registry: LocalServer, tmp_path: Path, size: int, message: str) -> None:
    image_id, _ = local_image(podman, tmp_path, [size])
    since = len(registry.log())
    result = podman.push(image_id, "pm/large:1")
    assert result.returncode != 0
    assert message in result.stderr
    requests = access_lines(registry, since, " 413 ")
    # podman tries the layer four times (three retries), each a single refused PATCH.
    assert {(method, status) for method, _, status in requests if status == 413} == {("PATCH", 413)}

    # The registry is none the worse: the next push and pull work.
    small_id, _ = local_image(podman, tmp_path, [2_000])
    digest = podman.push_ok(small_id, "pm/after-large:1")
    assert sha256(skopeo.ok("inspect", NO_TLS, "--raw", skopeo.ref("pm/after-large:1")).encode()) == digest
