"""Requests on one upload that overlap: a finish working from a state a chunk has since moved,
two finishes of different bytes, a cancel racing a chunk, a finish that died half way. Each
interleaving is played out in order through the service, with the loser going on from the
state it read, and judged by what a client then sees and what S3 keeps."""

from __future__ import annotations

import os
from typing import Any

import pytest
import requests

from chalicelib.digest.digests import Digest
from chalicelib.errors import Oci, RegistryError
from chalicelib.registry import Registry
from chalicelib.uploads.service import upload_location
from tests.helpers import MiB, bucket_keys, digest_of, fetch_blob, open_multipart_uploads

REPO = "team/app"


def served(client: Any, digest: str) -> bytes:
    """The bytes S3 serves for the blob, by way of the registry's redirect."""
    response = client.get(f"/v2/{REPO}/blobs/{digest}")
    assert response.status == 307
    fetched = requests.get(response.header("Location"), timeout=30)
    assert fetched.status_code == 200
    return fetched.content


@pytest.mark.parametrize("chunks", [[1 * MiB], [4 * MiB, 4 * MiB]], ids=["lone-piece", "multipart"])
def test_a_finish_from_a_state_a_chunk_moved_leaves_the_upload_able_to_go_on(
        registry: Registry, client: Any, aws: Any, bucket: str, chunks: list[int]) -> None:
    uploads = registry.uploads
    sent = [os.urandom(size) for size in chunks]
    state = uploads.start(REPO)
    for chunk in sent:
        state = uploads.append(state, chunk)
    extra = os.urandom(100)
    uploads.append(state, extra)  # commits while the finish below is under way
    with pytest.raises(RegistryError) as caught:
        uploads.finish(state, Digest.of(b"".join(sent)), b"")
    whole = b"".join(sent) + extra
    assert caught.value.kind is Oci.RANGE_INVALID and caught.value.headers["Range"] == f"0-{len(whole) - 1}"
    location = upload_location(REPO, state.uuid)
    assert client.put(f"{location}?digest={digest_of(whole)}").status == 201
    assert fetch_blob(client, REPO, digest_of(whole)) == whole
    assert len(bucket_keys(aws, bucket)) == 1 and open_multipart_uploads(aws, bucket) == []


def test_a_wrong_digest_from_a_stale_state_leaves_the_finished_blob_alone(
        registry: Registry, client: Any, aws: Any, bucket: str) -> None:
    uploads = registry.uploads
    data = os.urandom(3 * MiB)
    state = uploads.append(uploads.start(REPO), data)
    good = uploads.finish(state, Digest.of(data), b"")
    with pytest.raises(RegistryError) as caught:
        uploads.finish(state, Digest.of(b"other bytes"), b"")
    assert caught.value.kind is Oci.DIGEST_INVALID
    assert served(client, good.digest) == data


def test_two_finishes_of_different_bytes_never_overwrite_the_blob_the_first_stored(
        registry: Registry, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both read the upload (two pieces, no multipart upload). The first stores and promotes
    its blob; the second, with a different last chunk, must not write over that object."""
    uploads = registry.uploads
    head, tail = os.urandom(MiB), os.urandom(MiB)
    state = uploads.append(uploads.append(uploads.start(REPO), head), tail)
    with monkeypatch.context() as patch:
        patch.setattr(registry.blobs, "delete", lambda keys: None)  # the second reads the pieces first
        first = uploads.finish(state, Digest.of(head + tail), b"")
    other = b"other last chunk"
    with pytest.raises(RegistryError) as caught:
        uploads.finish(state, Digest.of(head + tail + other), other)
    assert caught.value.kind is Oci.BLOB_UPLOAD_UNKNOWN
    assert served(client, first.digest) == head + tail


def test_a_finish_of_other_bytes_while_one_is_under_way_is_refused_and_chunks_wait(
        registry: Registry, client: Any) -> None:
    """A claimed finish (here one that died after claiming) holds the upload: another digest
    is refused, a chunk is told the upload is being finished (not sent back to its offset),
    and the same digest finishes it."""
    uploads = registry.uploads
    head = os.urandom(MiB)
    state = uploads.append(uploads.append(uploads.start(REPO), head), head)
    assert registry.meta.claim_finish(state, digest_of(head + head))
    location = upload_location(REPO, state.uuid)
    refused = client.put(f"{location}?digest={digest_of(head)}", body=b"")
    assert (refused.status, refused.json()["errors"][0]["code"]) == (400, "DIGEST_INVALID")
    other = client.put(f"{location}?digest={digest_of(head + head + b'x')}", body=b"x")
    assert (other.status, other.json()["errors"][0]["code"]) == (400, "BLOB_UPLOAD_INVALID")
    chunk = client.patch(location, body=b"more", headers={"Content-Range": f"{2 * MiB}-{2 * MiB + 3}"})
    assert (chunk.status, chunk.json()["errors"][0]["code"]) == (400, "BLOB_UPLOAD_INVALID")
    assert client.put(f"{location}?digest={digest_of(head + head)}").status == 201
    assert fetch_blob(client, REPO, digest_of(head + head)) == head + head


def test_a_cancel_from_a_stale_state_removes_what_the_upload_holds_now(
        registry: Registry, aws: Any, bucket: str) -> None:
    uploads = registry.uploads
    state = uploads.append(uploads.start(REPO), os.urandom(4 * MiB))
    moved = uploads.append(state, os.urandom(4 * MiB))  # a part and a held piece, after the cancel read
    assert moved.multipart_id and moved.pieces
    uploads.cancel(state)
    assert bucket_keys(aws, bucket) == [] and open_multipart_uploads(aws, bucket) == []


def test_a_finish_that_died_after_completing_the_multipart_upload_is_finished_by_its_retry(
        registry: Registry, client: Any, aws: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(9 * MiB)
    location = upload_location(REPO, registry.uploads.start(REPO).uuid)
    for start in range(0, len(data), 4 * MiB):
        chunk = data[start:start + 4 * MiB]
        assert client.patch(location, body=chunk, headers={"Content-Range": f"{start}-{start + len(chunk) - 1}"}) \
            .status == 202
    with monkeypatch.context() as patch:
        def timed_out(*_: Any) -> str:
            raise RuntimeError("Lambda timed out after CompleteMultipartUpload")

        patch.setattr(registry.meta, "promote", timed_out)
        assert client.put(f"{location}?digest={digest_of(data)}").status == 500
    assert open_multipart_uploads(aws, bucket) == []  # completed: the retry cannot complete it again
    assert client.put(f"{location}?digest={digest_of(data)}").status == 201
    assert fetch_blob(client, REPO, digest_of(data)) == data
    assert len(bucket_keys(aws, bucket)) == 1


def test_an_upload_out_of_s3_part_numbers_is_refused_not_failed(registry: Registry, client: Any) -> None:
    """Retried and losing chunks spend part numbers too; past 10,000 S3 would refuse the part."""
    uploads = registry.uploads
    state = uploads.append(uploads.start(REPO), os.urandom(4 * MiB))
    registry.meta._db.update_item(  # as after 9,999 spent numbers
        TableName=registry.meta.table, Key={"pk": {"S": f"upload#{state.uuid}"}, "sk": {"S": "upload"}},
        UpdateExpression="SET part_seq = :n", ExpressionAttributeValues={":n": {"N": "10000"}})
    response = client.patch(upload_location(REPO, state.uuid), body=os.urandom(4 * MiB),
                            headers={"Content-Range": f"{4 * MiB}-{8 * MiB - 1}"})
    assert (response.status, response.json()["errors"][0]["code"]) == (413, "SIZE_INVALID")
    assert "part numbers" in response.json()["errors"][0]["message"]
