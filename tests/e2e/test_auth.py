"""Auth end to end: the local mode in token and in Basic mode, accounts made with the `berth`
command, and skopeo logging in (or not) over real HTTP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Skopeo
from tests.e2e.images import Layout
from tests.local import LocalServer, local_server

pytestmark = pytest.mark.e2e

ADMIN = "admin:admin-secret"


def berth(server: LocalServer, *args: str, stdin: str = "") -> str:
    result = subprocess.run([sys.executable, "-m", "berth.cli", *args, "--local", str(server.port)],
                            input=stdin, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module", params=["token", "basic"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def secured(mode: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    env = {"BERTH_AUTH": mode, "BERTH_BOOTSTRAP_USER": ADMIN}
    with local_server(tmp_path_factory.mktemp(f"berth-{mode}"), env=env) as server:
        berth(server, "user", "add", "reader", "--password-stdin", "--grant", "team/*=pull", stdin="reader-pw\n")
        berth(server, "user", "grant", "anonymous", "public/*", "pull")
        yield server


@pytest.fixture
def client(secured: LocalServer, tmp_path: Path) -> Skopeo:
    return Skopeo(secured, tmp_path)


def image(tmp_path: Path) -> str:
    layout = Layout(tmp_path / "src")
    layout.tag(layout.image([2_000, 30_000]), "1")
    return f"oci:{layout.root}:1"


def copy(skopeo: Skopeo, src: str, dest: str, *creds: str) -> subprocess.CompletedProcess[str]:
    return skopeo.run("copy", "--src-tls-verify=false", "--dest-tls-verify=false", *creds, src, dest)


def test_login_push_and_pull(client: Skopeo, tmp_path: Path) -> None:
    pushed = copy(client, image(tmp_path), client.ref("team/app:1"), "--dest-creds", ADMIN)
    assert pushed.returncode == 0, pushed.stderr
    pulled = copy(client, client.ref("team/app:1"), f"oci:{tmp_path / 'out'}:1", "--src-creds", "reader:reader-pw")
    assert pulled.returncode == 0, pulled.stderr


def test_without_credentials_nothing_goes_in_or_out(client: Skopeo, tmp_path: Path) -> None:
    copy(client, image(tmp_path), client.ref("team/app:2"), "--dest-creds", ADMIN)
    refused = copy(client, image(tmp_path), client.ref("team/app:3"), "--dest-no-creds")
    # Token mode: the anonymous token's refusal carries error="insufficient_scope", read as denied.
    assert refused.returncode != 0 and any(word in refused.stderr.lower() for word in ("unauthorized", "denied"))
    refused = copy(client, client.ref("team/app:2"), f"oci:{tmp_path / 'out'}:1", "--src-no-creds")
    assert refused.returncode != 0 and any(word in refused.stderr.lower() for word in ("unauthorized", "denied"))
    wrong = copy(client, client.ref("team/app:2"), f"oci:{tmp_path / 'out'}:1", "--src-creds", "reader:nope")
    assert wrong.returncode != 0


def test_a_pull_only_user_cannot_push(client: Skopeo, tmp_path: Path) -> None:
    refused = copy(client, image(tmp_path), client.ref("team/app:4"), "--dest-creds", "reader:reader-pw")
    assert refused.returncode != 0
    assert any(word in refused.stderr.lower() for word in ("unauthorized", "denied"))


def test_anonymous_pull_exactly_where_granted(client: Skopeo, tmp_path: Path, mode: str) -> None:
    copy(client, image(tmp_path), client.ref("public/tool:1"), "--dest-creds", ADMIN)
    copy(client, image(tmp_path), client.ref("team/tool:1"), "--dest-creds", ADMIN)
    public = copy(client, client.ref("public/tool:1"), f"oci:{tmp_path / 'a'}:1", "--src-no-creds")
    private = copy(client, client.ref("team/tool:1"), f"oci:{tmp_path / 'b'}:1", "--src-no-creds")
    assert private.returncode != 0
    if mode == "token":
        assert public.returncode == 0, public.stderr
    else:
        # API Gateway's TOKEN authorizer turns away requests without credentials before any
        # grant is looked at, so Basic mode has no anonymous pull; the local mode agrees.
        assert public.returncode != 0


def test_ci_token_works_until_revoked(client: Skopeo, secured: LocalServer, tmp_path: Path) -> None:
    berth(secured, "user", "add", "ci", "--password-stdin", "--grant", "ci/*=pull,push", stdin="unused-pw\n")
    token = berth(secured, "token", "create", "ci", "--description", "pipeline").strip()
    pushed = copy(client, image(tmp_path), client.ref("ci/app:1"), "--dest-creds", f"ci:{token}")
    assert pushed.returncode == 0, pushed.stderr
    token_id = token.split("_")[1]
    assert token_id in berth(secured, "token", "list", "ci")
    berth(secured, "token", "revoke", "ci", token_id)
    refused = copy(client, image(tmp_path), client.ref("ci/app:2"), "--dest-creds", f"ci:{token}")
    assert refused.returncode != 0
