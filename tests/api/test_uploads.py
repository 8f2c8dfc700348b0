"""Blob uploads through the handler: every client pattern, the S3 layout they leave behind,
races and retries, and both ways of verifying a digest."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from chalicelib.api.request import MAX_REQUEST_BODY
from chalicelib.digest.digests import Digest
from chalicelib.errors import Oci, RegistryError
from chalicelib.registry import Registry
from chalicelib.uploads.service import Uploads
from chalicelib.uploads.state import PART_MIN
from tests.helpers import (
    MiB,
    bucket_keys,
    digest_of,
    fetch_blob,
    open_multipart_uploads,
    push_chunked,
    start_upload,
)

REPO = "team/app"


@pytest.fixture(params=["resumable", "streamed"])
def hashing(request: pytest.FixtureRequest, registry: Registry) -> str:
    """Run a test with the saved SHA-256 state, and again with the fallback that hashes the
    stored object at the end (where libcrypto's SHA256_* cannot be loaded)."""
    if request.param == "streamed":
        registry.uploads = Uploads(registry.blobs, registry.meta, resumable_available=lambda: False)
    return str(request.param)


def test_single_patch_then_put_stores_the_blob_once(bucket: str, client: Any, aws: Any) -> None:
    data = os.urandom(300_000)
    response = push_chunked(client, REPO, data, chunk=len(data), with_range=False)
    assert response.status == 201
    assert response.header("Docker-Content-Digest") == digest_of(data)
    assert response.header("Location") == f"/v2/{REPO}/blobs/{digest_of(data)}"
    assert fetch_blob(client, REPO, digest_of(data)) == data
    # The piece written by the PATCH became the blob: one object, nothing copied.
    assert len(bucket_keys(aws, bucket)) == 1


def test_chunks_become_multipart_parts(bucket: str, client: Any, aws: Any, registry: Registry, hashing: str) -> None:
    data = os.urandom(12 * MiB + 12345)
    response = push_chunked(client, REPO, data, chunk=4 * MiB)
    assert response.status == 201, response.body
    assert fetch_blob(client, REPO, digest_of(data)) == data
    # One object: the completed multipart upload, where the blob record points.
    record = registry.meta.get_blob(digest_of(data))
    assert record is not None and bucket_keys(aws, bucket) == [record.key]
    assert open_multipart_uploads(aws, bucket) == []


def test_many_small_chunks_coalesce_into_parts(bucket: str, client: Any, aws: Any, hashing: str) -> None:
    data = os.urandom(PART_MIN + 3 * MiB)
    response = push_chunked(client, REPO, data, chunk=700_000)
    assert response.status == 201, response.body
    assert fetch_blob(client, REPO, digest_of(data)) == data
    assert len(bucket_keys(aws, bucket)) == 1  # pieces were cleaned up


def test_last_chunk_in_the_put(client: Any, hashing: str) -> None:
    data = os.urandom(3 * MiB)
    location = start_upload(client, REPO)
    first = client.patch(location, body=data[: 2 * MiB], headers={"Content-Range": f"0-{2 * MiB - 1}"})
    response = client.put(f"{first.header('Location')}?digest={digest_of(data)}", body=data[2 * MiB :],
                          headers={"Content-Range": f"{2 * MiB}-{3 * MiB - 1}"})
    assert response.status == 201, response.body
    assert fetch_blob(client, REPO, digest_of(data)) == data


def test_monolithic_put_on_a_fresh_upload(client: Any) -> None:
    data = os.urandom(1000)
    location = start_upload(client, REPO)
    response = client.put(f"{location}?digest={digest_of(data)}", body=data)
    assert response.status == 201
    assert fetch_blob(client, REPO, digest_of(data)) == data
    assert client.get(location).status == 404  # the upload is finished


def test_monolithic_post(client: Any) -> None:
    data = os.urandom(1000)
    response = client.post(f"/v2/{REPO}/blobs/uploads/?digest={digest_of(data)}", body=data)
    assert response.status == 201
    assert response.header("Docker-Content-Digest") == digest_of(data)
    assert client.head(f"/v2/{REPO}/blobs/{digest_of(data)}").header("Content-Length") == "1000"


def test_empty_blob(client: Any) -> None:
    location = start_upload(client, REPO)
    assert client.put(f"{location}?digest={digest_of(b'')}").status == 201
    assert fetch_blob(client, REPO, digest_of(b"")) == b""


def test_sha512_digest_is_verified_by_reading_the_object(client: Any) -> None:
    data = os.urandom(2 * MiB)
    location = start_upload(client, REPO)
    client.patch(location, body=data)
    sha512 = "sha512:" + hashlib.sha512(data).hexdigest()
    assert client.put(f"{location}?digest={sha512}").status == 201
    assert fetch_blob(client, REPO, sha512) == data


@pytest.mark.parametrize("size", [1000, 7 * MiB])
def test_digest_mismatch_discards_the_upload(bucket: str, client: Any, aws: Any, hashing: str, size: int) -> None:
    data = os.urandom(size)
    wrong = digest_of(b"something else")
    response = push_chunked(client, REPO, data, chunk=4 * MiB)
    assert response.status == 201  # sanity: the right digest works
    location = start_upload(client, REPO)
    for start in range(0, size, 4 * MiB):
        location = client.patch(location, body=data[start : start + 4 * MiB]).header("Location")
    before = set(bucket_keys(aws, bucket))
    response = client.put(f"{location}?digest={wrong}")
    assert response.status == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert client.get(location).status == 404
    assert client.head(f"/v2/{REPO}/blobs/{wrong}").status == 404
    assert set(bucket_keys(aws, bucket)) < before or len(before) == 1
    assert open_multipart_uploads(aws, bucket) == []


def test_pushing_an_existing_blob_stores_nothing_new(bucket: str, client: Any, aws: Any) -> None:
    data = os.urandom(9 * MiB)
    assert push_chunked(client, REPO, data, chunk=4 * MiB).status == 201
    keys = bucket_keys(aws, bucket)
    assert push_chunked(client, "other/repo", data, chunk=4 * MiB).status == 201
    assert bucket_keys(aws, bucket) == keys
    assert open_multipart_uploads(aws, bucket) == []
    assert fetch_blob(client, "other/repo", digest_of(data)) == data


def test_out_of_order_chunk_is_416_with_the_stored_range(client: Any) -> None:
    location = start_upload(client, REPO)
    client.patch(location, body=b"x" * 10, headers={"Content-Range": "0-9"})
    response = client.patch(location, body=b"y" * 10, headers={"Content-Range": "20-29"})
    assert response.status == 416
    assert response.header("Range") == "0-9"
    assert response.header("Location") == location
    assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    assert client.get(location).header("Range") == "0-9"


def test_content_range_must_match_the_body(client: Any) -> None:
    location = start_upload(client, REPO)
    response = client.patch(location, body=b"x" * 10, headers={"Content-Range": "0-4"})
    assert response.status == 400
    assert response.json()["errors"][0]["code"] == "SIZE_INVALID"
    response = client.patch(location, body=b"x" * 10, headers={"Content-Range": "junk"})
    assert response.status == 416


def test_racing_chunks_at_one_offset_keep_exactly_one(registry: Registry, client: Any, hashing: str) -> None:
    """Two PATCHes read the same state; the second to commit is refused, and its bytes are
    not in the blob."""
    uploads = registry.uploads
    state = uploads.start(REPO)
    first, second = os.urandom(1000), os.urandom(1000)
    won = uploads.append(state, first)
    with pytest.raises(RegistryError) as caught:
        uploads.append(state, second)
    assert caught.value.kind is Oci.RANGE_INVALID and caught.value.headers["Range"] == "0-999"
    blob = uploads.finish(won, Digest.of(first), b"")
    assert fetch_blob(client, REPO, blob.digest) == first


@pytest.mark.parametrize("loser_sees_pieces", [False, True])
def test_racing_part_writes_keep_exactly_one(bucket: str, registry: Registry, client: Any, aws: Any, hashing: str,
                                             monkeypatch: pytest.MonkeyPatch, loser_sees_pieces: bool) -> None:
    """Two chunks that each fill a part race from the same state. Either the loser finds the
    pieces already folded into the winner's part, or it writes its own part and multipart
    upload and fails to commit: both end in 416 with only the winner's bytes kept."""
    uploads = registry.uploads
    head = os.urandom(3 * MiB)
    state = uploads.append(uploads.start(REPO), head)
    first, second = os.urandom(3 * MiB), os.urandom(3 * MiB)
    with monkeypatch.context() as patch:
        if loser_sees_pieces:
            patch.setattr(registry.blobs, "delete", lambda keys: None)  # winner leaves its pieces
        won = uploads.append(state, first)
    with pytest.raises(RegistryError) as caught:
        uploads.append(state, second)
    assert caught.value.kind is Oci.RANGE_INVALID
    assert caught.value.headers["Range"] == f"0-{6 * MiB - 1}"
    assert open_multipart_uploads(aws, bucket) == [won.multipart_id]
    whole = head + first
    blob = uploads.finish(won, Digest.of(whole), b"")
    assert fetch_blob(client, REPO, blob.digest) == whole


@pytest.mark.parametrize("tail", [[3 * MiB], [1 * MiB, 1 * MiB]], ids=["one-piece", "two-pieces"])
def test_a_finish_that_loses_to_a_concurrent_finish_answers_with_the_winners_blob(
        registry: Registry, client: Any, monkeypatch: pytest.MonkeyPatch, hashing: str, tail: list[int]) -> None:
    """Both read the upload and found no stored blob; the winner then assembled, promoted and
    removed the pieces. The loser finds them gone and answers as the winner did."""
    uploads = registry.uploads
    chunks = [os.urandom(6 * MiB)] + [os.urandom(size) for size in tail]
    state = uploads.start(REPO)
    for chunk in chunks:
        state = uploads.append(state, chunk)
    data = b"".join(chunks)
    won = uploads.finish(state, Digest.of(data), b"")
    monkeypatch.setattr(registry.meta, "get_blob", lambda digest: None)  # read before the winner promoted
    assert uploads.finish(state, Digest.of(data), b"") == won
    assert fetch_blob(client, REPO, won.digest) == data


def test_a_chunk_that_loses_to_a_finish_is_refused_and_leaves_the_blob_alone(
        bucket: str, registry: Registry, client: Any, aws: Any) -> None:
    """The finish made the lone piece the blob; a chunk sent from the same state finds the
    upload retired: 404, no multipart upload left behind, the blob intact."""
    uploads = registry.uploads
    head = os.urandom(3 * MiB)
    state = uploads.append(uploads.start(REPO), head)
    uploads.finish(state, Digest.of(head), b"")
    with pytest.raises(RegistryError) as caught:
        uploads.append(state, os.urandom(3 * MiB))
    assert caught.value.kind is Oci.BLOB_UPLOAD_UNKNOWN
    assert open_multipart_uploads(aws, bucket) == []
    assert fetch_blob(client, REPO, digest_of(head)) == head


def test_the_last_piece_of_a_chunked_push_is_copied_by_s3_not_carried(client: Any, aws: Any) -> None:
    """16 MiB in 4 MiB chunks ends with a whole chunk waiting as a piece: S3 copies it in as
    the last part rather than Lambda reading it back and sending it again."""
    from tests.helpers import AwsCallCounter

    data = os.urandom(16 * MiB)
    location = start_upload(client, REPO)
    for start in range(0, len(data), 4 * MiB):
        chunk = data[start : start + 4 * MiB]
        headers = {"Content-Range": f"{start}-{start + len(chunk) - 1}"}
        assert client.patch(location, body=chunk, headers=headers).status == 202
    calls = AwsCallCounter(aws.dynamodb, aws.s3).during(
        lambda: client.put(f"{location}?digest={digest_of(data)}"))
    assert "s3.UploadPartCopy" in calls and "s3.GetObject" not in calls and "s3.UploadPart" not in calls
    assert fetch_blob(client, REPO, digest_of(data)) == data


def s3_bytes_written(aws: Any, action: Any) -> int:
    """Bytes the registry has S3 write during `action`: bodies it sends, and objects it copies."""
    written = 0

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        nonlocal written
        if model.name in ("PutObject", "UploadPart"):
            written += len(params["Body"])
        elif model.name == "UploadPartCopy":
            source = params["CopySource"]
            written += aws.s3.head_object(Bucket=source["Bucket"], Key=source["Key"])["ContentLength"]

    aws.s3.meta.events.register("before-parameter-build.s3.*", count)
    try:
        action()
    finally:
        aws.s3.meta.events.unregister("before-parameter-build.s3.*", count)
    return written


@pytest.mark.parametrize(("size", "written"), [(8, 13), (12, 17), (20, 30), (36, 51)])
def test_4_mib_chunks_write_about_17_bytes_for_12_pushed(client: Any, aws: Any, bucket: str,
                                                          size: int, written: int) -> None:
    """A piece of 4 MiB, a part of 7 holding 1 back, a part of 5, and again: each byte held as a
    piece is written twice, 5 MiB in 12 (docs/performance.md). The end may cost up to a chunk."""
    data = os.urandom(size * MiB)
    finished: list[Any] = []
    assert s3_bytes_written(aws, lambda: finished.append(push_chunked(client, REPO, data, chunk=4 * MiB))) \
        == written * MiB
    assert finished[0].status == 201
    assert fetch_blob(client, REPO, digest_of(data)) == data
    assert len(bucket_keys(aws, bucket)) == 1  # the blob; every piece is gone


def test_a_racing_chunk_that_held_back_a_tail_leaves_nothing_behind(
        bucket: str, registry: Registry, client: Any, aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """4 MiB chunks fill a part and hold 1 MiB back as a piece. The loser of a race, which
    still found the pieces, wrote a part and a held piece of its own: both are removed."""
    uploads = registry.uploads
    head = os.urandom(4 * MiB)
    state = uploads.append(uploads.start(REPO), head)
    first, second = os.urandom(4 * MiB), os.urandom(4 * MiB)
    with monkeypatch.context() as patch:
        patch.setattr(registry.blobs, "delete", lambda keys: None)  # the winner leaves its pieces
        won = uploads.append(state, first)
    assert [p.size for p in won.pieces] == [MiB]
    with pytest.raises(RegistryError) as caught:
        uploads.append(state, second)
    assert caught.value.kind is Oci.RANGE_INVALID
    assert bucket_keys(aws, bucket) == sorted([state.pieces[0].key, won.pieces[0].key])
    assert open_multipart_uploads(aws, bucket) == [won.multipart_id]
    blob = uploads.finish(won, Digest.of(head + first), b"")
    assert fetch_blob(client, REPO, blob.digest) == head + first


def test_a_chunk_retried_after_a_crash_is_neither_lost_nor_doubled(
        registry: Registry, client: Any, monkeypatch: pytest.MonkeyPatch, hashing: str) -> None:
    data = os.urandom(6 * MiB)
    location = start_upload(client, REPO)
    assert client.patch(location, body=data[: 3 * MiB]).status == 202
    real_commit = registry.meta.commit_upload
    calls = {"n": 0}

    def crash_once(state: Any, expected_offset: int, **how: Any) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("Lambda timed out after writing to S3")
        return real_commit(state, expected_offset, **how)

    monkeypatch.setattr(registry.meta, "commit_upload", crash_once)
    chunk = data[3 * MiB :]
    headers = {"Content-Range": f"{3 * MiB}-{6 * MiB - 1}"}
    crashed = client.patch(location, body=chunk, headers=headers)
    assert crashed.status == 500
    assert crashed.json()["errors"][0]["code"] == "UNKNOWN"
    assert client.patch(location, body=chunk, headers=headers).status == 202
    assert client.put(f"{location}?digest={digest_of(data)}").status == 201
    assert fetch_blob(client, REPO, digest_of(data)) == data


def test_cancel_frees_the_spool(bucket: str, client: Any, aws: Any) -> None:
    location = start_upload(client, REPO)
    client.patch(location, body=os.urandom(3 * MiB))
    client.patch(location, body=os.urandom(3 * MiB))
    assert open_multipart_uploads(aws, bucket)
    assert client.delete(location).status == 204
    assert bucket_keys(aws, bucket) == []
    assert open_multipart_uploads(aws, bucket) == []
    assert client.get(location).status == 404
    assert client.delete(location).status == 404


def test_upload_belongs_to_its_repository(client: Any) -> None:
    location = start_upload(client, REPO)
    other = location.replace(REPO, "other/repo")
    response = client.patch(other, body=b"x")
    assert response.status == 404
    assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


@pytest.mark.parametrize("uuid", ["nope", "0" * 32, ".."])
def test_unknown_upload(client: Any, uuid: str) -> None:
    response = client.get(f"/v2/{REPO}/blobs/uploads/{uuid}")
    assert response.status == 404
    assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_a_body_over_the_request_limit_is_413_naming_the_limit(client: Any) -> None:
    location = start_upload(client, REPO)
    response = client.patch(location, body=b"x" * (MAX_REQUEST_BODY + 1))
    assert response.status == 413
    error = response.json()["errors"][0]
    # UNSUPPORTED, which docker takes as final (it retries SIZE_INVALID for ~50 s).
    assert error["code"] == "UNSUPPORTED" and str(MAX_REQUEST_BODY) in error["message"]
    assert "berth push" in error["message"] and "berth relay" in error["message"]
    assert client.get(location).header("Range") == "0-0"  # nothing was stored


def test_a_body_over_the_lambda_payload_gets_api_gateways_own_413(client: Any) -> None:
    response = client.post(f"/v2/{REPO}/blobs/uploads/?digest={digest_of(b'')}", body=b"x" * 6_000_000)
    assert (response.status, response.body) == (413, b'{"message":"Request Too Long"}')


def test_post_advertises_chunk_lengths(client: Any) -> None:
    response = client.post(f"/v2/{REPO}/blobs/uploads/")
    assert response.header("OCI-Chunk-Max-Length") == str(MAX_REQUEST_BODY)
    assert int(response.header("OCI-Chunk-Min-Length")) <= MAX_REQUEST_BODY
    assert response.header("Docker-Upload-UUID") in response.header("Location")


def test_mount_from_a_repository_links_without_copying(bucket: str, client: Any, aws: Any) -> None:
    data = os.urandom(5000)
    push_chunked(client, "src/repo", data, chunk=5000)
    keys = bucket_keys(aws, bucket)
    response = client.post(f"/v2/{REPO}/blobs/uploads/?mount={digest_of(data)}&from=src/repo")
    assert response.status == 201
    assert response.header("Location") == f"/v2/{REPO}/blobs/{digest_of(data)}"
    assert response.header("Docker-Content-Digest") == digest_of(data)
    assert bucket_keys(aws, bucket) == keys
    assert fetch_blob(client, REPO, digest_of(data)) == data


def test_mount_without_from_finds_the_blob_anywhere(client: Any) -> None:
    data = os.urandom(5000)
    push_chunked(client, "src/repo", data, chunk=5000)
    assert client.post(f"/v2/{REPO}/blobs/uploads/?mount={digest_of(data)}").status == 201


def test_mount_of_a_blob_the_source_lacks_falls_back_to_an_upload(client: Any) -> None:
    data = os.urandom(5000)
    push_chunked(client, "src/repo", data, chunk=5000)
    response = client.post(f"/v2/{REPO}/blobs/uploads/?mount={digest_of(data)}&from=elsewhere")
    assert response.status == 202
    assert "/blobs/uploads/" in response.header("Location")
    missing = client.post(f"/v2/{REPO}/blobs/uploads/?mount={digest_of(b'nope')}")
    assert missing.status == 202


def test_blob_delete_unlinks_from_one_repository_only(client: Any) -> None:
    data = os.urandom(5000)
    push_chunked(client, "src/repo", data, chunk=5000)
    client.post(f"/v2/{REPO}/blobs/uploads/?mount={digest_of(data)}&from=src/repo")
    assert client.delete(f"/v2/{REPO}/blobs/{digest_of(data)}").status == 202
    assert client.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status == 404
    assert fetch_blob(client, "src/repo", digest_of(data)) == data
    assert client.delete(f"/v2/{REPO}/blobs/{digest_of(data)}").status == 404


def test_blob_range_requests_work_through_the_redirect(client: Any) -> None:
    import requests

    data = os.urandom(10_000)
    push_chunked(client, REPO, data, chunk=10_000)
    url = client.get(f"/v2/{REPO}/blobs/{digest_of(data)}").header("Location")
    partial = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=30)
    assert partial.status_code == 206 and partial.content == data[100:200]


def test_a_whole_layer_in_one_patch_costs_five_aws_calls(client: Any, aws: Any) -> None:
    """docker, podman and skopeo: POST, one PATCH, PUT ?digest=. The PATCH does not read the
    upload record (its conditional commit is the check), and the finish of a lone piece does
    not ask whether the blob exists (promotion's condition does)."""
    from tests.helpers import AwsCallCounter

    data = os.urandom(100_000)
    counter = AwsCallCounter(aws.dynamodb, aws.s3)
    location = ""

    def post() -> None:
        nonlocal location
        location = client.post(f"/v2/{REPO}/blobs/uploads/").header("Location")

    assert counter.during(post) == ["dynamodb.PutItem"]
    assert counter.during(lambda: client.patch(location, body=data)) == ["s3.PutObject", "dynamodb.UpdateItem"]
    assert counter.during(lambda: client.put(f"{location}?digest={digest_of(data)}")) == [
        "dynamodb.GetItem", "dynamodb.TransactWriteItems"]
    assert fetch_blob(client, REPO, digest_of(data)) == data


def test_a_first_chunk_guess_never_crosses_repositories_or_direct_uploads(client: Any, bucket: str,
                                                                          aws: Any) -> None:
    location = start_upload(client, REPO)
    stolen = client.patch(location.replace(REPO, "other/repo"), body=b"x" * 10)
    assert stolen.status == 404
    assert bucket_keys(aws, bucket) == []  # the speculative piece was removed
    direct = client.post(f"/v2/{REPO}/blobs/uploads/?berth-direct={20 * MiB}").header("Location")
    assert client.patch(direct, body=b"x" * 10).status == 400
    assert client.get(f"{direct}/parts").status == 200  # still a direct upload


def test_the_same_layer_pushed_twice_keeps_one_copy(client: Any, bucket: str, aws: Any) -> None:
    data = os.urandom(2000)
    for repo in (REPO, "other/repo"):
        location = start_upload(client, repo)
        client.patch(location, body=data)
        assert client.put(f"{location}?digest={digest_of(data)}").status == 201
    assert len(bucket_keys(aws, bucket)) == 1
    assert fetch_blob(client, "other/repo", digest_of(data)) == data
