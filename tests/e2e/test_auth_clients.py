"""Auth end to end for podman, oras-py and python-dxf (skopeo: tests/e2e/test_auth.py): the
local mode in token and in Basic mode, one registry per mode for the whole module. With the
admin's credentials each client pushes and pulls back digest-exact; without credentials, or
with wrong ones, it is refused; a pull-only user pulls but cannot push; anonymous pull works
for `public/*` in token mode only.

Content a test only pulls is put in place by skopeo (images) or over plain HTTP with the
admin's credentials (artifacts), so that a pull test fails for the pull alone.

python-dxf authenticates only over HTTPS (`authenticate` raises DXFAuthInsecureError with
`insecure=True`, and it fetches tokens from `https://` + the realm's host whatever the realm
says), so it reaches the registry through `TlsFront`, a TLS-terminating relay with a
throwaway certificate that dxf verifies."""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import oras.client
import oras.decorator
import oras.defaults
import pytest
import requests
from dxf import DXF, DXFBase
from dxf.exceptions import DXFUnauthorizedError

from tests.e2e.conftest import Skopeo
from tests.e2e.images import OCI_MANIFEST
from tests.e2e.test_auth import ADMIN, berth, copy, image
from tests.e2e.test_podman import NO_TLS, Podman, local_image
from tests.local import LocalServer, local_server

pytestmark = pytest.mark.e2e

READER = "reader:reader-pw"
TITLE = oras.defaults.annotation_title


# --- one registry per mode -------------------------------------------------------------------

@dataclass
class Secured:
    mode: str
    server: LocalServer

    @property
    def address(self) -> str:
        return self.server.address


# What a client says when a caller without credentials is refused: in token mode the refusal
# of an anonymous token is final ("denied"), in Basic mode a challenge ("unauthorized").
ANONYMOUS_REFUSED = {"token": "denied: requested access to the resource is denied", "basic": "unauthorized"}

def start(mode: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    env = {"BERTH_AUTH": mode, "BERTH_BOOTSTRAP_USER": ADMIN}
    with local_server(tmp_path_factory.mktemp(f"berth-{mode}"), env=env) as server:
        berth(server, "user", "add", "reader", "--password-stdin", "--grant", "team/*=pull", stdin="reader-pw\n")
        berth(server, "user", "grant", "anonymous", "public/*", "pull")
        yield Secured(mode, server)


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    yield from start("token", tmp_path_factory)


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    yield from start("basic", tmp_path_factory)


@pytest.fixture(params=["token", "basic"])
def secured(request: pytest.FixtureRequest) -> Secured:
    return cast(Secured, request.getfixturevalue(f"{request.param}_registry"))


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def seed_image(secured: Secured, tmp_path: Path, name: str) -> str:
    """An image pushed by skopeo with the admin's credentials: its manifest digest."""
    digest_file = tmp_path / f"digest-{os.urandom(4).hex()}"
    pushed = copy(Skopeo(secured.server, tmp_path), image(tmp_path), f"docker://{secured.address}/{name}",
                  "--dest-creds", ADMIN, "--digestfile", str(digest_file))
    assert pushed.returncode == 0, pushed.stderr
    return digest_file.read_text().strip()


def seed_artifact(secured: Secured, repo: str, tag: str, files: dict[str, bytes]) -> str:
    """An artifact in oras-py's shape (a titled layer per file) put over plain HTTP with the
    admin's credentials, as each mode wants them: its manifest digest."""
    session, base = requests.Session(), f"http://{secured.address}"
    if secured.mode == "token":
        answer = session.get(f"{base}/token", params={"service": "berth", "scope": f"repository:{repo}:pull,push"},
                             auth=("admin", "admin-secret"))
        assert answer.status_code == 200, answer.text
        session.headers["Authorization"] = f"Bearer {answer.json()['token']}"
    else:
        session.auth = ("admin", "admin-secret")

    def blob(data: bytes, media_type: str, **annotations: str) -> dict[str, Any]:
        put = session.post(f"{base}/v2/{repo}/blobs/uploads/", params={"digest": digest_of(data)}, data=data,
                           headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 201, put.text
        return {"mediaType": media_type, "digest": digest_of(data), "size": len(data),
                **({"annotations": annotations} if annotations else {})}

    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": blob(b"{}", oras.defaults.unknown_config_media_type),
        "layers": [blob(data, oras.defaults.default_blob_media_type, **{TITLE: name}) for name, data in files.items()],
    }).encode()
    put = session.put(f"{base}/v2/{repo}/manifests/{tag}", data=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 201, put.text
    return digest_of(manifest)


# --- podman ----------------------------------------------------------------------------------

def podman_for(secured: Secured, tmp_path: Path) -> Podman:
    """A podman with empty storage and its own, empty, authfile."""
    podman = Podman(secured.server, tmp_path / f"podman-{os.urandom(4).hex()}")
    podman.env["REGISTRY_AUTH_FILE"] = str(podman.home / "auth.json")
    (podman.home / "auth.json").write_text('{"auths": {}}')
    return podman


def podman_login(podman: Podman, credentials: str) -> subprocess.CompletedProcess[str]:
    user, password = credentials.split(":")
    return podman.run("login", NO_TLS, "--username", user, "--password", password, podman.registry.address)


def podman_pull(podman: Podman, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return podman.run("pull", "-q", "--signature-policy", str(podman.policy), NO_TLS, *args,
                      f"docker://{podman.ref(name)}")


def test_podman_logs_in_pushes_and_pulls(secured: Secured, tmp_path: Path) -> None:
    podman = podman_for(secured, tmp_path)
    login = podman_login(podman, ADMIN)
    assert login.returncode == 0 and "Login Succeeded" in login.stdout, login.stderr
    assert secured.address in json.loads((podman.home / "auth.json").read_text())["auths"]
    image_id, _ = local_image(podman, tmp_path, [2_000, 30_000])
    digest = podman.push_ok(image_id, "team/pm:1")

    other = podman_for(secured, tmp_path)
    assert podman_login(other, ADMIN).returncode == 0
    assert other.pull(f"docker://{other.ref('team/pm:1')}") == image_id
    assert other.inspect(other.ref("team/pm:1"))["Digest"] == digest
    # --creds instead of a login: the same, by digest.
    third = podman_for(secured, tmp_path)
    pulled = podman_pull(third, f"team/pm@{digest}", "--creds", ADMIN)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == image_id


def test_podman_without_or_with_wrong_credentials_is_refused(secured: Secured, tmp_path: Path) -> None:
    seed_image(secured, tmp_path, "team/pm-seeded:1")
    podman = podman_for(secured, tmp_path)
    image_id, _ = local_image(podman, tmp_path, [2_000])

    # Token mode: the anonymous token's refusal carries error="insufficient_scope", read as denied.
    pushed = podman.push(image_id, "team/pm-anon:1")
    assert pushed.returncode != 0 and ANONYMOUS_REFUSED[secured.mode] in pushed.stderr.lower(), pushed.stderr
    pulled = podman_pull(podman, "team/pm-seeded:1")
    assert pulled.returncode != 0 and ANONYMOUS_REFUSED[secured.mode] in pulled.stderr.lower(), pulled.stderr

    wrong = podman_login(podman, "admin:nope")
    assert wrong.returncode != 0 and "invalid username/password" in wrong.stderr.lower(), wrong.stderr
    assert json.loads((podman.home / "auth.json").read_text()) == {"auths": {}}
    pushed = podman.run("push", "--signature-policy", str(podman.policy), NO_TLS, "--creds", "admin:nope",
                        image_id, podman.ref("team/pm-wrong:1"))
    assert pushed.returncode != 0 and "unauthorized" in pushed.stderr.lower(), pushed.stderr
    pulled = podman_pull(podman, "team/pm-seeded:1", "--creds", "admin:nope")
    assert pulled.returncode != 0 and "unauthorized" in pulled.stderr.lower(), pulled.stderr


def test_podman_pull_only_user_pulls_but_cannot_push(secured: Secured, tmp_path: Path) -> None:
    digest = seed_image(secured, tmp_path, "team/pm-read:1")
    podman = podman_for(secured, tmp_path)
    assert podman_login(podman, READER).returncode == 0
    pulled = podman_pull(podman, "team/pm-read:1")
    assert pulled.returncode == 0, pulled.stderr
    assert podman.inspect(podman.ref("team/pm-read:1"))["Digest"] == digest

    pushed = podman.push(pulled.stdout.strip(), "team/pm-read:2")
    assert pushed.returncode != 0
    assert any(word in pushed.stderr.lower() for word in ("unauthorized", "denied")), pushed.stderr


def test_podman_anonymous_pull_exactly_where_granted(secured: Secured, tmp_path: Path) -> None:
    public = seed_image(secured, tmp_path, "public/pm:1")
    seed_image(secured, tmp_path, "team/pm-private:1")
    podman = podman_for(secured, tmp_path)
    private = podman_pull(podman, "team/pm-private:1")
    assert private.returncode != 0 and ANONYMOUS_REFUSED[secured.mode] in private.stderr.lower(), private.stderr
    pulled = podman_pull(podman, "public/pm:1")
    if secured.mode == "token":
        assert pulled.returncode == 0, pulled.stderr
        assert podman.inspect(podman.ref("public/pm:1"))["Digest"] == public
    else:  # no anonymous access in Basic mode (docs/auth.md)
        assert pulled.returncode != 0 and "unauthorized" in pulled.stderr.lower(), pulled.stderr


# --- oras-py ---------------------------------------------------------------------------------
# With credentials oras-py uses its "basic" auth backend, in both modes: its token backend
# asks /token for exactly the scope the challenge names, which behind API Gateway is none
# (docs/auth.md), and it keeps one token per client (oras-project/oras-py#187). Berth takes
# Basic credentials in token mode too. Without credentials it takes the token backend (an
# anonymous token). `login` checks nothing (no docker daemon: it writes the credentials to
# `config_path` and sets them on the client); the registry's answer comes at the first request.

@pytest.fixture
def oras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """No ~/.docker/config.json of the machine's; oras-py's retry back-off (5 retries, 3 s to
    83 s apart, after any exception in a request) recorded instead of slept."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    sleeps: list[float] = []
    monkeypatch.setattr(oras.decorator, "time", SimpleNamespace(sleep=sleeps.append))
    return sleeps


def oras_client(secured: Secured, tmp_path: Path, credentials: str | None) -> oras.client.OrasClient:
    client = oras.client.OrasClient(hostname=secured.address, insecure=True,
                                    auth_backend="basic" if credentials else "token")
    if credentials:
        user, password = credentials.split(":")
        answer = client.login(user, password, hostname=secured.address,
                              config_path=str(tmp_path / f"oras-{os.urandom(4).hex()}.json"))
        assert answer == {"Status": "Login Succeeded"}
    return client


def oras_push(client: oras.client.OrasClient, target: str, tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / f"in-{os.urandom(4).hex()}" / "payload.bin"
    path.parent.mkdir()
    path.write_bytes(os.urandom(50_000))
    response = client.push(target=target, files=[str(path)], disable_path_validation=True, quiet=True)
    assert response.status_code == 201, response.text
    return str(response.headers["Docker-Content-Digest"]), path


def oras_pull(client: oras.client.OrasClient, target: str, tmp_path: Path) -> dict[str, bytes]:
    out = tmp_path / f"out-{os.urandom(4).hex()}"
    return {Path(path).name: Path(path).read_bytes() for path in client.pull(target=target, outdir=str(out))}


def test_oras_logs_in_pushes_and_pulls(secured: Secured, tmp_path: Path, oras_home: list[float]) -> None:
    target = f"{secured.address}/team/or"
    digest, payload = oras_push(oras_client(secured, tmp_path, ADMIN), f"{target}:1", tmp_path)

    client = oras_client(secured, tmp_path, ADMIN)
    manifest = client.get_manifest(f"{target}@{digest}")
    assert [(layer["digest"], layer["annotations"][TITLE]) for layer in manifest["layers"]] == \
        [(digest_of(payload.read_bytes()), "payload.bin")]
    assert client.get_manifest(f"{target}:1") == manifest
    assert oras_pull(client, f"{target}:1", tmp_path) == {"payload.bin": payload.read_bytes()}


def test_oras_logs_in_and_pulls(secured: Secured, tmp_path: Path, oras_home: list[float]) -> None:
    target = f"{secured.address}/team/or-pulled"
    data = os.urandom(50_000)
    digest = seed_artifact(secured, "team/or-pulled", "1", {"data.bin": data})
    client = oras_client(secured, tmp_path, ADMIN)
    assert oras_pull(client, f"{target}@{digest}", tmp_path) == {"data.bin": data}
    assert [layer["digest"] for layer in client.get_manifest(f"{target}:1")["layers"]] == [digest_of(data)]


def test_oras_with_wrong_or_without_credentials_is_refused(
        secured: Secured, tmp_path: Path, oras_home: list[float]) -> None:
    target = f"{secured.address}/team/or-seeded"
    seed_artifact(secured, "team/or-seeded", "1", {"a.txt": b"seeded"})
    wrong = oras_client(secured, tmp_path, "admin:nope")
    with pytest.raises(ValueError, match="UNAUTHORIZED"):
        oras_push(wrong, f"{target}:2", tmp_path)
    with pytest.raises(ValueError, match="Unauthorized"):
        wrong.get_manifest(f"{target}:1")
    if secured.mode == "token":
        # Without credentials it takes an anonymous token, which reaches nothing here. (oras-py
        # without credentials cannot talk to a Basic registry at all: see below.)
        anonymous = oras_client(secured, tmp_path, None)
        with pytest.raises(ValueError, match="UNAUTHORIZED|DENIED"):
            oras_push(anonymous, f"{target}:3", tmp_path)
        with pytest.raises(ValueError, match="Unauthorized|Forbidden"):
            anonymous.get_manifest(f"{target}:1")


def test_oras_pull_only_user_pulls_but_cannot_push(
        secured: Secured, tmp_path: Path, oras_home: list[float]) -> None:
    target = f"{secured.address}/team/or-read"
    seed_artifact(secured, "team/or-read", "1", {"a.txt": b"for readers"})
    assert oras_pull(oras_client(secured, tmp_path, READER), f"{target}:1", tmp_path) == {"a.txt": b"for readers"}
    with pytest.raises(ValueError, match="DENIED|UNAUTHORIZED"):
        oras_push(oras_client(secured, tmp_path, READER), f"{target}:2", tmp_path)


def test_oras_anonymous_pull_exactly_where_granted(
        token_registry: Secured, tmp_path: Path, oras_home: list[float]) -> None:
    """Token mode only: oras-py without credentials against a Basic registry has no answer to
    the challenge (its basic backend reads credentials it never set, its token backend takes
    the realm "berth" for a URL) and raises after retrying 5 times."""
    seed_artifact(token_registry, "public/or", "1", {"p.txt": b"public"})
    seed_artifact(token_registry, "team/or-private", "1", {"q.txt": b"private"})
    with pytest.raises(ValueError, match="Unauthorized|Forbidden"):
        oras_client(token_registry, tmp_path, None).get_manifest(f"{token_registry.address}/team/or-private:1")
    client = oras_client(token_registry, tmp_path, None)  # a new client: a token of its own
    assert oras_pull(client, f"{token_registry.address}/public/or:1", tmp_path) == {"p.txt": b"public"}


# --- python-dxf ------------------------------------------------------------------------------

class TlsFront(socketserver.ThreadingTCPServer):
    """HTTPS on a free port of 127.0.0.1 relayed, bytes as they come, to the local mode's HTTP."""

    daemon_threads = True

    def __init__(self, backend: LocalServer, cert: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.backend = backend
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Relay(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        front = cast(TlsFront, self.server)
        try:
            with front.context.wrap_socket(self.request, server_side=True) as tls, \
                    socket.create_connection(("127.0.0.1", front.backend.port)) as plain:
                while True:
                    for ready in select.select([tls, plain], [], [])[0]:
                        data = ready.recv(1 << 16)
                        while ready is tls and tls.pending():
                            data += tls.recv(tls.pending())
                        if not data:
                            return
                        (plain if ready is tls else tls).sendall(data)
        except OSError:  # includes ssl.SSLError; the client went away
            pass


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    workdir = tmp_path_factory.mktemp("tls")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


DxfFor = Callable[..., DXF]


@pytest.fixture
def dxf_for(certificate: tuple[Path, Path]) -> Iterator[DxfFor]:
    """`dxf_for(registry, repo, credentials, actions=("pull",))`: a DXF over HTTPS whose auth
    callback calls `authenticate` with those credentials (None: anonymous) and actions (None:
    none, so that dxf takes the scope from the challenge)."""
    fronts: dict[int, TlsFront] = {}
    opened: list[DXF] = []

    def make(registry: Secured, repo: str, credentials: str | None,
             actions: tuple[str, ...] | None = ("pull",)) -> DXF:
        if registry.server.port not in fronts:
            front = fronts[registry.server.port] = TlsFront(registry.server, *certificate)
            threading.Thread(target=front.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        user, password = credentials.split(":") if credentials else (None, None)

        def auth(dxf: DXFBase, response: requests.Response) -> None:
            dxf.authenticate(user, password, actions=list(actions) if actions else None, response=response)

        dxf = DXF(fronts[registry.server.port].address, repo, auth=auth, tlsverify=str(certificate[0]), timeout=30)
        dxf.__enter__()
        opened.append(dxf)
        return dxf

    yield make
    for dxf in opened:
        dxf.__exit__(None, None, None)
    for front in fronts.values():
        front.shutdown()
        front.server_close()


def dxf_pulled(dxf: DXF, digest: str) -> bytes:
    return b"".join(cast(Iterable[bytes], dxf.pull_blob(digest)))  # dxf checks the digest itself


def dxf_layers(dxf: DXF, alias: str) -> list[bytes]:
    return [dxf_pulled(dxf, digest) for digest in cast(list[str], dxf.get_alias(alias))]


def test_dxf_logs_in_pushes_and_pulls(secured: Secured, dxf_for: DxfFor) -> None:
    pusher = dxf_for(secured, "team/dx", ADMIN, ("pull", "push"))
    data = os.urandom(200_000)
    assert pusher.push_blob(data=iter([data]), digest=digest_of(data)) == digest_of(data)
    manifest = pusher.set_alias("1", digest_of(data))

    puller = dxf_for(secured, "team/dx", ADMIN)
    assert puller.get_alias("1") == [digest_of(data)]
    assert puller.head_manifest_and_response("1")[0] == digest_of(manifest.encode())
    assert dxf_pulled(puller, digest_of(data)) == data


def test_dxf_without_or_with_wrong_credentials_is_refused(secured: Secured, dxf_for: DxfFor) -> None:
    digest = seed_artifact(secured, "team/dx-seeded", "1", {"a": b"seeded"})
    data = os.urandom(1_000)
    for credentials in (None, "admin:nope"):
        dxf = dxf_for(secured, "team/dx-seeded", credentials, ("pull", "push"))
        with pytest.raises(DXFUnauthorizedError, match="unauthorized"):
            dxf.push_blob(data=iter([data]), digest=digest_of(data))
        with pytest.raises(DXFUnauthorizedError, match="unauthorized"):
            dxf.get_alias("1")
        with pytest.raises(DXFUnauthorizedError, match="unauthorized"):
            dxf.pull_blob(digest)


def test_dxf_pull_only_user_pulls_but_cannot_push(secured: Secured, dxf_for: DxfFor) -> None:
    seed_artifact(secured, "team/dx-read", "1", {"a": b"for readers"})
    reader = dxf_for(secured, "team/dx-read", READER, ("pull", "push"))
    assert dxf_layers(reader, "1") == [b"for readers"]
    data = os.urandom(1_000)
    with pytest.raises((DXFUnauthorizedError, requests.HTTPError)) as refused:
        reader.push_blob(data=iter([data]), digest=digest_of(data))
    if secured.mode == "token":  # a token for pull only, and a new one still for pull only
        assert isinstance(refused.value, DXFUnauthorizedError)
    else:  # a known user without the grant
        assert isinstance(refused.value, requests.HTTPError)
        assert refused.value.response is not None and refused.value.response.status_code == 403
        assert refused.value.response.json()["errors"][0]["code"] == "DENIED"


def test_dxf_anonymous_pull_exactly_where_granted(secured: Secured, dxf_for: DxfFor) -> None:
    seed_artifact(secured, "public/dx", "1", {"p": b"public"})
    seed_artifact(secured, "team/dx-private", "1", {"q": b"private"})
    with pytest.raises(DXFUnauthorizedError):
        dxf_for(secured, "team/dx-private", None).get_alias("1")
    public = dxf_for(secured, "public/dx", None)
    if secured.mode == "token":
        assert dxf_layers(public, "1") == [b"public"]
    else:  # no anonymous access in Basic mode (docs/auth.md)
        with pytest.raises(DXFUnauthorizedError):
            public.get_alias("1")


def test_dxf_with_its_default_callback(token_registry: Secured, dxf_for: DxfFor) -> None:
    """dxf's documented callback, `authenticate(user, password, response=response)`, asks
    /token for the scope the challenge names, which behind API Gateway is none: such a
    token carries the user's grants (docs/auth.md)."""
    seed_artifact(token_registry, "team/dx-scoped", "1", {"a": b"scoped"})
    assert dxf_layers(dxf_for(token_registry, "team/dx-scoped", ADMIN, None), "1") == [b"scoped"]
