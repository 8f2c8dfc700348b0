"""python-dxf (the `dxf` package) against the local mode, as a Python user would drive it:
the registry as a blob store. Push and pull blobs, name them with an alias (a Docker v2
schema 2 manifest), list aliases (tags) and repositories, mount a blob from another
repository, delete aliases and blobs.

dxf sends blob bodies without a Content-Type. `test_push_blob_*` show what a dxf user sees on
push; the other tests put their blobs in place over plain HTTP (as any other client would,
typed `application/octet-stream`) so that the rest of dxf is exercised whatever push does."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import cast

import pytest
import requests
from dxf import DXF, DXFBase
from dxf.exceptions import DXFMountFailed

from tests.e2e.test_skopeo import access_lines
from tests.local import LocalServer

pytestmark = pytest.mark.e2e

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
Connect = Callable[[str], DXF]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pulled(dxf: DXF, digest: str) -> bytes:
    # dxf hashes what it reads and raises DXFDigestMismatchError at the end on a mismatch.
    return b"".join(cast(Iterable[bytes], dxf.pull_blob(digest)))


def status_of(error: pytest.ExceptionInfo[requests.HTTPError]) -> int | None:
    return None if error.value.response is None else error.value.response.status_code


def push_blob(dxf: DXF, *args: str, **kwargs: object) -> str:
    """dxf's push_blob, failing with the registry's error body (dxf only shows the status)."""
    try:
        return dxf.push_blob(*args, **kwargs)  # type: ignore[arg-type]
    except requests.HTTPError as err:
        pytest.fail(f"{err}\n{'' if err.response is None else err.response.text}")


def seed(registry: LocalServer, repo: str, data: bytes) -> str:
    """A monolithic upload (`POST ?digest=`) typed application/octet-stream."""
    conn = registry.connect()
    try:
        conn.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest_of(data)}", body=data,
                     headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        assert response.status == 201, response.read()
    finally:
        conn.close()
    return digest_of(data)


@pytest.fixture
def connect(registry: LocalServer) -> Iterator[Connect]:
    opened: list[DXF] = []

    def make(repo: str) -> DXF:
        dxf = DXF(registry.address, repo, insecure=True, timeout=30)
        dxf.__enter__()  # one HTTP session per client, as `with DXF(...)` gives
        opened.append(dxf)
        return dxf

    yield make
    for dxf in opened:
        dxf.__exit__(None, None, None)


def test_push_blob_from_a_file(connect: Connect, tmp_path: Path) -> None:
    dxf = connect("dx/files")
    data = os.urandom(700_000)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    # One PUT ?digest= with Content-Length and no Content-Type.
    assert push_blob(dxf, str(path)) == digest_of(data)
    assert dxf.blob_size(digest_of(data)) == len(data)
    assert pulled(dxf, digest_of(data)) == data


def test_push_blob_from_chunks(connect: Connect) -> None:
    dxf = connect("dx/chunks")
    data = os.urandom(3_000_000)
    progress: list[int] = []
    # One PUT ?digest= with Transfer-Encoding: chunked and no Content-Type.
    assert push_blob(dxf, data=(data[i:i + 1_000_000] for i in range(0, len(data), 1_000_000)),
                         digest=digest_of(data), progress=lambda _digest, chunk, *_: progress.append(len(chunk))) \
        == digest_of(data)
    assert progress == [1_000_000] * 3
    assert pulled(dxf, digest_of(data)) == data


def test_push_blob_that_exists_is_not_uploaded_again(connect: Connect, registry: LocalServer) -> None:
    dxf = connect("dx/again")
    data = os.urandom(1_000)
    before = len(registry.log())
    seed(registry, "dx/again", data)
    access_lines(registry, before, "POST /v2/dx/again/blobs/uploads/")  # logged after it answered
    since = len(registry.log())
    assert dxf.push_blob(data=iter([data]), digest=digest_of(data)) == digest_of(data)
    requests_made = access_lines(registry, since, f"HEAD /v2/dx/again/blobs/{digest_of(data)}")
    assert [(method, status) for method, _, status in requests_made] == [("HEAD", 200)]


def test_pull_blob_and_its_size(connect: Connect, registry: LocalServer) -> None:
    dxf = connect("dx/blobs")
    small, large = os.urandom(1_000), os.urandom(3_000_000)
    for data in (small, large):
        seed(registry, "dx/blobs", data)

    assert pulled(dxf, digest_of(small)) == small
    assert pulled(dxf, digest_of(large)) == large
    chunks, size = cast(tuple[Iterable[bytes], int], dxf.pull_blob(digest_of(large), size=True, chunk_size=65536))
    assert size == len(large)
    assert b"".join(chunks) == large
    assert dxf.blob_size(digest_of(large)) == len(large)  # a HEAD
    with pytest.raises(requests.HTTPError) as missing:
        dxf.blob_size(digest_of(b"never pushed"))
    assert status_of(missing) == 404


def test_alias_list_and_delete(connect: Connect, registry: LocalServer) -> None:
    dxf = connect("dx/aliases")
    first, second = os.urandom(2_000), os.urandom(40_000)
    for data in (first, second):
        seed(registry, "dx/aliases", data)
    manifest_json = dxf.set_alias("v1", digest_of(first), digest_of(second))
    dxf.set_alias("v2", digest_of(second))
    dxf.set_alias("latest", digest_of(first), digest_of(second))

    assert dxf.get_alias("v1") == [digest_of(first), digest_of(second)]
    assert dxf.get_alias("v2", sizes=True) == [(digest_of(second), len(second))]
    assert dxf.get_digest("v1") == digest_of(first)  # dxf makes the first blob the config
    assert dxf.get_manifest("v1") == manifest_json
    assert json.loads(manifest_json)["mediaType"] == DOCKER_MANIFEST
    digest, response = dxf.head_manifest_and_response("v1")
    assert digest == digest_of(manifest_json.encode())
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert dxf.list_aliases() == ["latest", "v1", "v2"]
    assert list(dxf.list_aliases(batch_size=1, iterate=True)) == ["latest", "v1", "v2"]  # follows Link
    assert "dx/aliases" in DXFBase(registry.address, insecure=True).list_repos()

    # del_alias deletes the manifest by digest: every alias naming it goes, the blobs stay.
    assert dxf.del_alias("v1") == [digest_of(first), digest_of(second)]
    assert dxf.list_aliases() == ["v2"]
    with pytest.raises(requests.HTTPError) as gone:
        dxf.get_alias("latest")
    assert status_of(gone) == 404
    assert pulled(dxf, digest_of(first)) == first


def test_mount_from_another_repository(connect: Connect, registry: LocalServer) -> None:
    target = connect("dx-other/target")
    data = os.urandom(100_000)
    seed(registry, "dx/source", data)
    with pytest.raises(requests.HTTPError) as absent:
        target.blob_size(digest_of(data))
    assert status_of(absent) == 404

    since = len(registry.log())
    assert target.mount_blob("dx/source", digest_of(data)) == digest_of(data)
    requests_made = access_lines(registry, since, "POST /v2/dx-other/target/blobs/uploads/")
    assert [(method, target_, status) for method, target_, status in requests_made
            if target_.startswith("/v2/dx-other/target/blobs/uploads/")] == [
        ("POST", f"/v2/dx-other/target/blobs/uploads/?mount={digest_of(data)}&from=dx/source", 201)]
    assert target.blob_size(digest_of(data)) == len(data)
    assert pulled(target, digest_of(data)) == data
    target.set_alias("1", digest_of(data))
    assert target.get_alias("1") == [digest_of(data)]

    # Nothing to mount: the registry opens an upload instead (202), which dxf reports.
    with pytest.raises(DXFMountFailed):
        target.mount_blob("dx/source", digest_of(os.urandom(10)))


def test_delete_blob(connect: Connect, registry: LocalServer) -> None:
    first, second = connect("dx/del-a"), connect("dx/del-b")
    data = os.urandom(5_000)
    seed(registry, "dx/del-a", data)
    second.mount_blob("dx/del-a", digest_of(data))

    first.del_blob(digest_of(data))
    with pytest.raises(requests.HTTPError) as gone:
        first.blob_size(digest_of(data))
    assert status_of(gone) == 404
    with pytest.raises(requests.HTTPError) as again:
        first.del_blob(digest_of(data))
    assert status_of(again) == 404
    # Only unlinked from that repository: the other keeps it.
    assert pulled(second, digest_of(data)) == data


def test_api_version_check(connect: Connect) -> None:
    body, response = connect("dx/any").api_version_check()
    assert json.loads(body) == {}
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"

