"""`berth push` and `berth pull` against the local mode: layouts, `docker save` archives and
other registries as sources, direct uploads of a 200 MiB layer in bounded memory, resuming,
mounting, manifests last, and auth."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from berth.cli import main
from berth.client import AuthError, ClientError, Credentials, LayoutSource, RegistryClient, ResumeStore, push
from berth.client.session import RegistrySession
from tests.client.archives import Image, docker_save
from tests.e2e.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Layout, blobs, layer, tagged
from tests.local import REPO, LocalServer, local_server

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
BIG = 200 * MiB
PART = 16 * MiB  # the registry's part size for a blob this big
ACCESS = re.compile(r"^\S+ (?P<method>[A-Z]+) (?P<target>\S+) (?P<status>\d{3}) ", re.M)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with local_server(tmp_path_factory.mktemp("berth-local")) as server:
        yield server


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test keeps its unfinished uploads to itself."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def berth(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out.strip(), err


def requests_since(registry: LocalServer, offset: int, until: str) -> list[tuple[str, str, int]]:
    """(method, target, status) of each request logged after `offset`, once the request to
    `until` is in the log (the server logs a request after answering it)."""
    deadline = time.monotonic() + 10
    while True:
        seen = [(m["method"], unquote(m["target"]), int(m["status"])) for m in ACCESS.finditer(registry.log()[offset:])]
        if any(target.endswith(until) for _, target, _ in seen):
            return seen
        assert time.monotonic() < deadline, f"no request to {until} in the log"
        time.sleep(0.05)


def big_file(directory: Path) -> tuple[Path, str]:
    """200 MiB of random bytes written a MiB at a time, and their digest."""
    path, digest = directory / "big.bin", hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(BIG // MiB):
            block = os.urandom(MiB)
            digest.update(block)
            out.write(block)
    return path, f"sha256:{digest.hexdigest()}"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An OCI layout and a `docker save` archive, each an image whose one layer is 200 MiB."""
    root = tmp_path_factory.mktemp("big")
    data, digest = big_file(root)
    layout = Layout(root / "layout")
    data.rename(layout.root / "blobs" / "sha256" / digest[7:])
    config = layout.add_blob(json.dumps({"architecture": "amd64", "os": "linux",
                                         "rootfs": {"type": "layers", "diff_ids": [digest]}}).encode(), OCI_CONFIG)
    layer_descriptor = {"mediaType": OCI_LAYER, "digest": digest, "size": BIG}
    manifest = layout.add_blob(json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                                           "layers": [layer_descriptor]}).encode(), OCI_MANIFEST)
    layout.tag(manifest, "big")
    archive = root / "big.tar"
    docker_save(archive, [Image("team/big:1", [layout.root / "blobs" / "sha256" / digest[7:]])])
    return {"layout": layout.root, "archive": archive, "layer": digest, "manifest": manifest["digest"]}


def push_measured(registry: LocalServer, source: str, dest: str, cache: Path) -> tuple[str, int]:
    """`berth push` in its own process: the digest printed, and the process's peak memory (KiB).
    VmHWM, not ru_maxrss: Linux carries the parent's peak (this test process's) into the latter."""
    script = ("import re, sys\nfrom berth.cli import main\ncode = main(sys.argv[1:])\n"
              "status = open('/proc/self/status').read()\n"
              "print('maxrss', re.search(r'VmHWM:\\s*(\\d+) kB', status)[1], file=sys.stderr)\nsys.exit(code)")
    result = subprocess.run([sys.executable, "-c", script, "push", "--quiet", source, f"{registry.address}/{dest}"],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), int(result.stderr.split("maxrss")[1])


def test_a_200_mib_layer_goes_straight_to_s3_in_bounded_memory_from_a_layout_and_an_archive(
        registry: LocalServer, big: dict[str, Any], tmp_path: Path, cache: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    since = len(registry.log())
    digest, peak_kib = push_measured(registry, f"oci:{big['layout']}:big", "team/big:1", cache)
    assert digest == big["manifest"]
    assert peak_kib < 150 * 1024, f"{peak_kib} KiB: a 200 MiB layer must not sit in memory"
    seen = requests_since(registry, since, "/v2/team/big/manifests/1")
    assert ("POST", f"/v2/team/big/blobs/uploads/?berth-direct={BIG}", 202) in seen
    assert not [r for r in seen if r[0] == "PATCH"], "nothing through Lambda in chunks"

    digest, peak_kib = push_measured(registry, f"docker-archive:{big['archive']}", "team/big-archive", cache)
    assert peak_kib < 150 * 1024
    code, pulled, _ = berth(capsys, "pull", f"{registry.address}/team/big-archive:1", str(tmp_path / "out"))
    assert (code, pulled) == (0, digest)
    manifest = json.loads((tmp_path / "out" / "blobs" / "sha256" / digest[7:]).read_bytes())
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["layers"] == [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar",
                                   "digest": big["layer"], "size": BIG}]
    assert (tmp_path / "out" / "blobs" / "sha256" / big["layer"][7:]).stat().st_size == BIG  # pull checked the digest


class Interrupt(KeyboardInterrupt):
    pass


def test_an_interrupted_push_resumes_without_resending_finished_parts(
        registry: LocalServer, big: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    real_external = RegistrySession.external

    def counting(self: RegistrySession, method: str, url: str, **kwargs: Any) -> Any:
        response = real_external(self, method, url, **kwargs)
        if method == "PUT" and response.status_code == 200:
            sent.append(url)  # a part S3 took
        return response

    monkeypatch.setattr(RegistrySession, "external", counting)
    source = LayoutSource(big["layout"], "big")
    real_blob = source.blob

    class Ctrl_C_at_part_6:
        def __init__(self, content: Any) -> None:
            self.content = content

        def open(self, offset: int, length: int) -> Any:
            if offset == 5 * PART:
                raise Interrupt
            return self.content.open(offset, length)

    store = ResumeStore()
    client = RegistryClient(registry.address)
    with monkeypatch.context() as patched:
        patched.setattr(source, "blob", lambda d: Ctrl_C_at_part_6(real_blob(d)))
        with pytest.raises(Interrupt):
            push(source, client.repository("team/resumed", push=True), "1", resume=store)
    first_run = len(sent)
    assert 0 < first_run < BIG // PART
    state = store.get(registry.address, "team/resumed", big["layer"])
    assert state is not None and state.mode == "direct"
    assert len(client.repository("team/resumed", push=True).upload_parts(state.location).uploaded) == first_run

    sent.clear()
    digest = push(source, RegistryClient(registry.address).repository("team/resumed", push=True), "1", resume=store)
    assert digest == big["manifest"]
    assert len(sent) == -(-BIG // PART) - first_run, "only the parts S3 did not hold"
    assert store.get(registry.address, "team/resumed", big["layer"]) is None


def test_small_and_medium_layers_round_trip_and_a_second_push_sends_nothing(
        registry: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = Layout(tmp_path / "src")
    manifest = src.image([3_000, 200_000, 6_000_000])
    src.tag(manifest, "1")
    code, digest, err = berth(capsys, "push", f"oci:{src.root}:1", f"{registry.address}/team/app")
    assert (code, digest) == (0, manifest["digest"]), err
    code, pulled, _ = berth(capsys, "pull", f"{registry.address}/team/app:1", f"oci:{tmp_path / 'out'}:v1")
    assert (code, pulled) == (0, manifest["digest"])
    assert tagged(tmp_path / "out", "v1")["digest"] == manifest["digest"]
    assert blobs(tmp_path / "out") == blobs(src.root)

    since = len(registry.log())
    assert berth(capsys, "push", str(src.root), f"docker://{registry.address}/team/app:1")[:2] == (0, digest)
    seen = requests_since(registry, since, "/v2/team/app/manifests/1")
    assert not [r for r in seen if r[0] in ("POST", "PATCH")]


def test_an_index_goes_after_its_children_and_every_platform_pulls_back(
        registry: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = Layout(tmp_path / "src")
    amd64, arm64 = src.image([4_000, 300_000], "amd64"), src.image([5_000], "arm64")
    index = src.index([amd64, arm64])
    src.tag(index, "multi")
    since = len(registry.log())
    assert berth(capsys, "push", f"oci:{src.root}:multi", f"{registry.address}/team/multi")[:2] == (0, index["digest"])
    manifests = [target.rsplit("/", 1)[1] for method, target, _ in requests_since(registry, since, "/manifests/multi")
                 if method == "PUT" and "/manifests/" in target]
    assert sorted(manifests[:2]) == sorted([amd64["digest"], arm64["digest"]])
    assert manifests[2:] == ["multi"]
    assert berth(capsys, "pull", f"{registry.address}/team/multi:multi", str(tmp_path / "out"))[:2] == (
        0, index["digest"])
    assert blobs(tmp_path / "out") == blobs(src.root)

    # From another registry (localhost is not 127.0.0.1 to the client), with every platform.
    assert berth(capsys, "push", f"docker://localhost:{registry.port}/team/multi:multi",
                 f"{registry.address}/team/multi-copy")[:2] == (0, index["digest"])
    assert berth(capsys, "pull", f"{registry.address}/team/multi-copy:multi", str(tmp_path / "copy"))[0] == 0
    assert blobs(tmp_path / "copy") == blobs(src.root)


def test_a_docker_save_archive_pushes_its_layers_as_stored(
        registry: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gzipped = tmp_path / "a.tar.gz"
    gzipped.write_bytes(layer(100_000)[0])
    plain = tmp_path / "b.tar"
    plain.write_bytes(os.urandom(50_000))
    docker_save(tmp_path / "image.tar", [Image("app:1", [gzipped]), Image("team/app:2", [plain, gzipped])])
    code, digest, err = berth(capsys, "push", f"{tmp_path / 'image.tar'}:team/app:2", f"{registry.address}/team/saved")
    assert code == 0, err
    assert berth(capsys, "pull", f"{registry.address}/team/saved:2", str(tmp_path / "out"))[:2] == (0, digest)
    pulled = blobs(tmp_path / "out")
    assert pulled[tagged(tmp_path / "out", "2")["digest"]] == pulled[digest]
    layers = json.loads(pulled[digest])["layers"]
    assert [pulled[d["digest"]] for d in layers] == [plain.read_bytes(), gzipped.read_bytes()]
    assert [d["mediaType"].rsplit(".", 1)[1] for d in layers] == ["tar", "gzip"]


def test_an_oci_archive_skopeo_wrote_pushes_as_its_layout_would(
        registry: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert shutil.which("skopeo"), "skopeo is not installed: run scripts/install-tools (make test does)"
    src = Layout(tmp_path / "src")
    manifest = src.image([3_000, 6_000_000])
    src.tag(manifest, "1")
    archive = tmp_path / "image.tar"
    made = subprocess.run(["skopeo", "copy", "--quiet", f"oci:{src.root}:1", f"oci-archive:{archive}:1"],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    code, digest, err = berth(capsys, "push", f"oci-archive:{archive}:1", f"{registry.address}/team/archived")
    assert (code, digest) == (0, manifest["digest"]), err
    assert berth(capsys, "pull", f"{registry.address}/team/archived:1", str(tmp_path / "out"))[:2] == (0, digest)
    assert blobs(tmp_path / "out") == blobs(src.root)


def test_a_copy_within_the_registry_mounts_and_from_another_streams(
        registry: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = Layout(tmp_path / "src")
    manifest = src.image([2_000, 7_000_000])
    src.tag(manifest, "1")
    assert berth(capsys, "push", f"oci:{src.root}:1", f"{registry.address}/team/origin:1")[0] == 0

    since = len(registry.log())
    assert berth(capsys, "push", f"docker://{registry.address}/team/origin:1", f"{registry.address}/team/mounted")[:2] \
        == (0, manifest["digest"])
    seen = requests_since(registry, since, "/v2/team/mounted/manifests/1")
    mounts = [r for r in seen if r[0] == "POST" and "mount=" in r[1]]
    assert len(mounts) == 3 and all(status == 201 and "from=team/origin" in t for _, t, status in mounts)

    # localhost and 127.0.0.1 are different registries to the client: blobs come over in ranges.
    other = f"localhost:{registry.port}"
    since = len(registry.log())
    assert berth(capsys, "push", f"docker://{other}/team/origin:1", f"{registry.address}/team/streamed:1")[:2] \
        == (0, manifest["digest"])
    seen = requests_since(registry, since, "/v2/team/streamed/manifests/1")
    big_layer = json.loads(blobs(src.root)[manifest["digest"]])["layers"][1]
    assert ("POST", f"/v2/team/streamed/blobs/uploads/?berth-direct={big_layer['size']}", 202) in seen
    assert ("GET", f"/v2/team/origin/blobs/{big_layer['digest']}", 307) in seen
    assert not [r for r in seen if "mount=" in r[1]]
    assert berth(capsys, "pull", f"{registry.address}/team/streamed:1", str(tmp_path / "out"))[0] == 0
    assert blobs(tmp_path / "out") == blobs(src.root)


def test_bad_arguments_fail_with_a_message(registry: LocalServer, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = berth(capsys, "push", str(tmp_path / "nothing"), f"{registry.address}/team/x")
    assert (code, out) == (1, "") and "no such file or directory" in err
    code, _, err = berth(capsys, "pull", f"{registry.address}/team/never:1", str(tmp_path / "out"))
    assert code == 1 and "MANIFEST_UNKNOWN" in err


ANONYMOUS_REFUSED = {
    "token": "refused anonymous access; wanted repository:team/app:pull,push",  # a token without grants
    "basic": "the registry wants credentials",
}


@pytest.fixture(scope="module", params=sorted(ANONYMOUS_REFUSED))
def guarded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[LocalServer, str]]:
    with local_server(tmp_path_factory.mktemp("berth-auth"),
                      env={"BERTH_AUTH": request.param, "BERTH_BOOTSTRAP_USER": "admin:change-me"}) as server:
        yield server, request.param


def test_auth_with_creds_or_the_environment(guarded: tuple[LocalServer, str], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    server, mode = guarded
    src = Layout(tmp_path / "src")
    manifest = src.image([1_000, 2_000, 5_000_000])  # blobs in parallel: challenges answered at once
    src.tag(manifest, "1")
    code, _, err = berth(capsys, "push", f"oci:{src.root}:1", f"{server.address}/team/app:1")
    assert code == 1 and ANONYMOUS_REFUSED[mode] in err
    code, digest, err = berth(capsys, "push", "--creds", "admin:change-me", f"oci:{src.root}:1",
                              f"{server.address}/team/app:1")
    assert (code, digest) == (0, manifest["digest"]), err
    assert "change-me" not in err
    code, _, err = berth(capsys, "pull", "--creds", "admin:wrong", f"{server.address}/team/app:1", str(tmp_path / "x"))
    assert code == 1 and "refused the credentials of admin" in err
    with pytest.raises(AuthError, match="refused the credentials of admin"):
        RegistryClient(server.address, credentials=Credentials("admin", "wrong")).ping()
    admin = RegistryClient(server.address, credentials=Credentials("admin", "change-me"))
    admin.ping()
    assert list(admin.repository("team/app").tags()) == ["1"]
    monkeypatch.setenv("BERTH_USERNAME", "admin")
    monkeypatch.setenv("BERTH_PASSWORD", "change-me")
    assert berth(capsys, "pull", f"{server.address}/team/app:1", str(tmp_path / "out"))[:2] == (0, digest)
    assert blobs(tmp_path / "out") == blobs(src.root)


def test_a_push_by_digest_must_match_the_source(registry: LocalServer, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    src = Layout(tmp_path / "src")
    manifest = src.image([1_000])
    src.tag(manifest, "1")
    code, _, err = berth(capsys, "push", str(src.root), f"{registry.address}/team/d@sha256:{'0' * 64}")
    assert code == 1 and "the source's digest is" in err
    assert berth(capsys, "push", str(src.root), f"{registry.address}/team/d@{manifest['digest']}")[:2] == (
        0, manifest["digest"])
    with pytest.raises(ClientError):
        RegistryClient(registry.address).repository("team/d").get_manifest("1")
