"""skopeo and podman push an image with a 200 MiB layer through `berth relay` to the local mode
and pull it back through it. Each client sends the layer in one request (podman with chunked
coding), which no Lambda takes; the relay spools it and sends it straight to S3. Checked:
the digests survive, the upstream took the layer by the direct path, no request to the upstream
carried more than 4,456,448 bytes (everything the relay sent it, counted by a tap, is less),
pulled bytes never pass through the relay, and no spool file is left behind. The relay's peak
memory is printed (`pytest -s`) and must stay well below the layer's size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Skopeo
from tests.e2e.images import Descriptor, Layout, blobs, layer, tagged
from tests.e2e.test_podman import Podman
from tests.e2e.test_skopeo import access_lines
from tests.local import LocalServer
from tests.relay import CHUNK_MAX, MiB, RelayProcess, Tap, big_layer, image

pytestmark = pytest.mark.e2e

BIG = 200 * MiB
PUSH, PULL = "--dest-tls-verify=false", "--src-tls-verify=false"
# The relay's memory may not grow with the layer: a fraction of it is plenty.
MEMORY_BOUND = BIG // 2


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Layout, Descriptor]]:
    """An OCI layout with small layers and one of 200 MiB (plus its tar header)."""
    layout = Layout(tmp_path_factory.mktemp("source") / "layout")
    yield layout, image(layout, [layer(3_000), layer(1_000_000), big_layer(BIG)])


def spooled(spool: Path) -> list[Path]:
    return [path for path in spool.rglob("*") if path.is_file()]


def direct_uploads(upstream: LocalServer, since: int, manifest_put: str) -> list[int]:
    """The sizes of the blobs the upstream took by the direct path up to `manifest_put`,
    checking that it refused nothing as too large."""
    requests = access_lines(upstream, since, manifest_put)
    assert not [r for r in requests if r[2] == 413], requests
    return [int(target.rpartition("berth-direct=")[2]) for method, target, status in requests
            if method == "POST" and "berth-direct=" in target and status == 202]


def check_push(relay: RelayProcess, client: str, upstream_bytes: int) -> None:
    """Everything the relay sent the upstream fits in one request, so no request held more;
    the relay's memory stayed well below the layer's size."""
    peak = relay.peak_rss()
    print(f"\n{client}: relay peak RSS while relaying a {BIG // MiB} MiB layer: {peak / MiB:.1f} MiB; "
          f"bytes the relay sent the upstream in all: {upstream_bytes:,}")
    assert upstream_bytes < CHUNK_MAX
    assert peak < MEMORY_BOUND


def test_skopeo_pushes_and_pulls_a_200_mib_layer_through_the_relay(
        source: tuple[Layout, Descriptor], upstream: LocalServer, tap: Tap, relay: RelayProcess,
        spool: Path, tmp_path: Path) -> None:
    layout, manifest = source
    skopeo = Skopeo(relay, tmp_path)  # it needs only the registry's address
    ref = skopeo.ref("team/big:1")
    big = max(blobs(layout.root).values(), key=len)
    since, sent = len(upstream.log()), tap.sent

    skopeo.ok("copy", PUSH, f"oci:{layout.root}:1", ref)

    check_push(relay, "skopeo", tap.sent - sent)
    assert direct_uploads(upstream, since, "PUT /v2/team/big/manifests/1") == [len(big)]
    assert spooled(spool) == []

    received = tap.received
    out = tmp_path / "out"
    skopeo.ok("copy", PULL, ref, f"oci:{out}:1")
    assert tagged(out, "1")["digest"] == manifest["digest"]
    assert blobs(out) == blobs(layout.root)
    assert tap.received - received < MiB  # manifests only: blobs come from S3 by redirect


def test_podman_pushes_and_pulls_a_200_mib_layer_through_the_relay(
        source: tuple[Layout, Descriptor], upstream: LocalServer, tap: Tap, relay: RelayProcess,
        spool: Path, tmp_path: Path) -> None:
    layout, _ = source
    podman = Podman(relay, tmp_path / "podman")
    image_id = podman.pull(f"oci:{layout.root}:1")
    since, sent = len(upstream.log()), tap.sent

    # podman recompresses the layers from its storage: the 200 MiB layer stays about that big.
    digest = podman.push_ok(image_id, "pm/big:1")

    check_push(relay, "podman", tap.sent - sent)
    [size] = direct_uploads(upstream, since, "PUT /v2/pm/big/manifests/1")
    assert size > BIG
    assert spooled(spool) == []

    other = Podman(relay, tmp_path / "podman-pull")
    received = tap.received
    assert other.pull(f"docker://{other.ref('pm/big:1')}") == image_id
    assert other.inspect(other.ref("pm/big:1"))["Digest"] == digest
    assert tap.received - received < MiB
