"""Auth through the relay, with the upstream in token and in Basic mode: the client's own
credentials work upstream (including for a layer the relay sends by the direct path, with the
token or password the client sent), the upstream's challenge reaches the client, and a client
that may not push is refused before it sends any layer."""

from __future__ import annotations

import http.client
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Skopeo
from tests.e2e.images import Layout, blobs, layer
from tests.e2e.test_auth import berth
from tests.local import LocalServer
from tests.relay import MiB, RelayProcess, Tap, big_layer, image

pytestmark = pytest.mark.e2e

ADMIN = "admin:admin-pw"
READER = "reader:reader-pw"


@pytest.fixture(scope="module", params=["token", "basic"])
def upstream_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"BERTH_AUTH": request.param, "BERTH_BOOTSTRAP_USER": ADMIN}


@pytest.fixture(scope="module")
def reader(upstream: LocalServer) -> str:
    berth(upstream, "user", "add", "reader", "--password-stdin", "--grant", "team/*=pull", stdin="reader-pw\n")
    return READER


def copy(skopeo: Skopeo, src: str, dest: str, *creds: str) -> subprocess.CompletedProcess[str]:
    return skopeo.run("copy", "--src-tls-verify=false", "--dest-tls-verify=false", *creds, src, dest)


def test_the_clients_credentials_push_and_pull_through_the_relay(
        upstream: LocalServer, relay: RelayProcess, spool: Path, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "src")
    image(layout, [layer(2_000), big_layer(12 * MiB)])
    skopeo = Skopeo(relay, tmp_path)
    since = len(upstream.log())

    pushed = copy(skopeo, f"oci:{layout.root}:1", skopeo.ref("team/app:1"), "--dest-creds", ADMIN)
    assert pushed.returncode == 0, pushed.stderr
    assert "berth-direct=" in upstream.log()[since:]  # the large layer went straight to S3, as admin
    assert [p for p in spool.rglob("*") if p.is_file()] == []

    out = tmp_path / "out"
    pulled = copy(skopeo, skopeo.ref("team/app:1"), f"oci:{out}:1", "--src-creds", ADMIN)
    assert pulled.returncode == 0, pulled.stderr
    assert blobs(out) == blobs(layout.root)


def test_without_credentials_the_upstreams_challenge_reaches_the_client(
        relay: RelayProcess, tap: Tap, upstream_env: dict[str, str], tmp_path: Path) -> None:
    layout = Layout(tmp_path / "src")
    image(layout, [layer(2_000)])
    skopeo = Skopeo(relay, tmp_path)
    refused = copy(skopeo, f"oci:{layout.root}:1", skopeo.ref("team/app:2"), "--dest-no-creds")
    # Token mode: the anonymous token's refusal carries error="insufficient_scope", read as denied.
    assert refused.returncode != 0 and any(w in refused.stderr.lower() for w in ("unauthorized", "denied")), \
        refused.stderr

    conn = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=30)
    conn.request("POST", "/v2/team/app/blobs/uploads/")
    response = conn.getresponse()
    response.read()
    assert response.status == 401
    challenge = response.getheader("WWW-Authenticate", "")
    if upstream_env["BERTH_AUTH"] == "token":
        assert challenge.startswith(f'Bearer realm="http://{tap.address}/token"')  # the upstream's token service
    else:
        assert challenge.startswith("Basic ")


def test_a_client_that_may_not_push_is_refused_before_sending_a_layer(
        reader: str, relay: RelayProcess, spool: Path, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "src")
    image(layout, [layer(2_000), big_layer(6 * MiB)])
    skopeo = Skopeo(relay, tmp_path)
    refused = copy(skopeo, f"oci:{layout.root}:1", skopeo.ref("team/app:3"), "--dest-creds", reader)
    assert refused.returncode != 0
    assert any(word in refused.stderr.lower() for word in ("unauthorized", "denied")), refused.stderr
    assert " PATCH " not in relay.log()  # the upstream refused every upload the client tried to start
