"""Purge of abandoned uploads: mid-chunk (pieces), mid-multipart (an S3 multipart upload and
pieces), mid direct-to-S3 upload, and never a live one."""

from __future__ import annotations

import os
from typing import Any

import pytest

from chalicelib.lifecycle.purge import purge_uploads
from tests.api.lifecycle_support import Lab
from tests.helpers import (
    AwsCallCounter,
    MiB,
    digest_of,
    fetch_blob,
    manifest_body,
    open_multipart_uploads,
    start_upload,
)

REPO = "team/app"
CHUNK = 4 * MiB + 256 * 1024  # what one request carries: two of them fill an S3 part


@pytest.fixture
def lab(registry: Any, aws: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> Lab:
    lab = Lab(registry, aws, client, monkeypatch)
    lab.configure(upload_max_age_hours=24)
    return lab


def patch(lab: Lab, location: str, data: bytes, start: int) -> str:
    response = lab.client.patch(location, body=data, headers={"Content-Range": f"{start}-{start + len(data) - 1}"})
    assert response.status == 202, response.body
    return str(response.header("Location"))


def test_upload_abandoned_mid_chunk_loses_its_record_and_pieces(lab: Lab) -> None:
    location = patch(lab, start_upload(lab.client, REPO), b"first chunk", 0)
    assert len(lab.objects()) == 1  # the piece
    assert lab.jobs.purge().uploads == 0  # a day has not passed
    lab.clock.later(25)
    report = lab.jobs.purge()
    assert (report.uploads, report.bytes, report.complete) == (1, len(b"first chunk"), True)
    assert lab.objects() == []
    assert lab.client.patch(location, body=b"more").status == 404
    assert lab.client.get(location).status == 404


def test_upload_abandoned_mid_multipart_loses_its_s3_upload_and_pieces(lab: Lab) -> None:
    location = start_upload(lab.client, REPO)
    location = patch(lab, location, os.urandom(CHUNK), 0)
    # Fills a part, so the multipart upload starts, and holds its last 0.75 MiB back as a piece.
    location = patch(lab, location, os.urandom(CHUNK), CHUNK)
    patch(lab, location, b"tail", 2 * CHUNK)  # another piece after the part
    assert len(open_multipart_uploads(lab.aws, lab.bucket)) == 1 and len(lab.objects()) == 2
    lab.clock.later(25)
    assert lab.jobs.purge().uploads == 1
    assert open_multipart_uploads(lab.aws, lab.bucket) == []
    assert lab.objects() == []


def test_uploads_idle_less_than_the_maximum_age_stay_and_finish(lab: Lab) -> None:
    idle = patch(lab, start_upload(lab.client, REPO), b"idle", 0)
    revived = patch(lab, start_upload(lab.client, "other/app"), b"re", 0)
    lab.backdate(f"upload#{revived.rsplit('/', 1)[1]}", "upload", 48, "touched")
    revived = patch(lab, revived, b"vived", 2)  # a chunk now: the age counts from here
    lab.clock.later(23)
    assert lab.jobs.purge().uploads == 0
    assert lab.client.put(f"{idle}?digest={digest_of(b'idle')}").status == 201
    assert lab.client.put(f"{revived}?digest={digest_of(b'revived')}").status == 201


def test_a_chunk_that_commits_between_the_purges_read_and_delete_wins(lab: Lab) -> None:
    location = patch(lab, start_upload(lab.client, REPO), b"abc", 0)
    uuid = location.rsplit("/", 1)[1]
    read = lab.registry.uploads.current(uuid)  # what the purge read
    assert read is not None
    location = patch(lab, location, b"def", 3)  # the client comes back meanwhile
    assert not lab.jobs.uploads.abandon(read)
    assert lab.client.put(f"{location}?digest={digest_of(b'abcdef')}").status == 201
    assert lab.client.head(f"/v2/{REPO}/blobs/{digest_of(b'abcdef')}").status == 200


def test_a_finish_that_crashed_after_assembling_leaves_nothing_behind(lab: Lab) -> None:
    location = patch(lab, start_upload(lab.client, REPO), b"piece one", 0)
    location = patch(lab, location, b"piece two", 9)
    uuid = location.rsplit("/", 1)[1]
    state = lab.registry.uploads.current(uuid)
    assert state is not None
    lab.registry.blobs.put(state.object_key, b"piece onepiece two")  # joined, then the Lambda died
    lab.clock.later(25)
    assert lab.jobs.purge().uploads == 1
    assert lab.objects() == []


def test_dry_run_purge_counts_and_keeps(lab: Lab) -> None:
    patch(lab, start_upload(lab.client, REPO), b"abandoned", 0)
    lab.clock.later(25)
    lines: list[str] = []
    report = lab.jobs.purge(dry_run=True, notify=lines.append)
    assert (report.uploads, report.bytes) == (1, 9) and len(lines) == 1 and len(lab.objects()) == 1
    assert lab.jobs.purge().uploads == 1


def test_purge_stops_when_told_and_the_next_run_finishes(lab: Lab) -> None:
    for i in range(3):
        patch(lab, start_upload(lab.client, f"r/{i}"), b"x", 0)
    lab.clock.later(25)
    cutoff = int(lab.clock()) - lab.jobs.settings.lifecycle.upload_max_age
    # Told to stop once one upload is gone (its piece with it).
    first = purge_uploads(lab.jobs.store, lab.jobs.uploads, cutoff, lambda: len(lab.objects()) < 3, page_size=1)
    assert not first.complete and first.uploads == 1
    assert lab.jobs.purge().uploads == 2
    assert lab.objects() == []


def test_direct_uploads_abandoned_before_or_after_their_finish_are_purged(lab: Lab) -> None:
    """Mid direct-to-S3 upload: the parts sent (an S3 multipart upload at direct/<uuid>), and a
    finished object nobody verified (the verifier never ran), both go with the record."""
    import requests

    data = os.urandom(16 * MiB + 10)
    open_part = lab.client.post(f"/v2/{REPO}/blobs/uploads/?berth-direct={len(data)}").header("Location")
    first = lab.client.get(f"{open_part}/parts").json()["urls"][0]["url"]
    assert requests.put(first, data=data[: 16 * MiB], timeout=60).status_code == 200
    finished = lab.client.post(f"/v2/{REPO}/blobs/uploads/?berth-direct={len(data)}").header("Location")
    for entry in lab.client.get(f"{finished}/parts").json()["urls"]:
        part = data[(entry["number"] - 1) * 16 * MiB : entry["number"] * 16 * MiB]
        assert requests.put(entry["url"], data=part, timeout=60).status_code == 200
    assert lab.client.put(f"{finished}?digest={digest_of(data)}").status == 202
    assert len(open_multipart_uploads(lab.aws, lab.bucket)) == 1 and len(lab.objects()) == 1
    lab.clock.later(25)
    assert lab.jobs.purge().uploads == 2
    assert open_multipart_uploads(lab.aws, lab.bucket) == [] and lab.objects() == []
    assert lab.client.get(open_part).status == 404 and lab.client.get(finished).status == 404


def died(monkeypatch: pytest.MonkeyPatch, target: object, method: str) -> None:
    """The next call of `target.method` never returns: the Lambda died there (a timeout, a
    crash). Calls after it run normally, as the client's retry reaches a fresh container."""
    original = getattr(target, method)

    def once(*args: object, **kwargs: object) -> object:
        monkeypatch.setattr(target, method, original)
        raise ConnectionError(f"the request died in {method}")

    monkeypatch.setattr(target, method, once)


@pytest.mark.parametrize("how", ["chunk", "monolithic", "abandoned"])
def test_an_object_written_by_a_request_that_died_before_its_commit_is_swept(
        lab: Lab, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """The leak docs/lifecycle.md used to list: a PATCH (or a monolithic POST) that wrote its
    piece and died before committing it left an object no record names. The client's retry
    writes another; the purge finds the first under its hour and deletes it, and nothing else."""
    data = b"a layer pushed in one request"
    if how == "monolithic":
        died(monkeypatch, lab.registry.meta, "promote")
        path = f"/v2/{REPO}/blobs/uploads/?digest={digest_of(data)}"
        assert lab.client.post(path, body=data).status == 500
        assert lab.client.post(path, body=data).status == 201  # the client's retry
    else:
        location = start_upload(lab.client, REPO)
        died(monkeypatch, lab.registry.meta, "commit_upload")
        assert lab.client.patch(location, body=data).status == 500
        if how == "chunk":
            location = patch(lab, location, data, 0)  # the retry, then the finish
            assert lab.client.put(f"{location}?digest={digest_of(data)}").status == 201
    assert len(lab.objects()) == (1 if how == "abandoned" else 2)  # the orphan (and the blob)
    lab.clock.later(1)
    assert lab.jobs.purge().pieces == 0  # its hour is not over yet: requests may still write into it
    lab.clock.later(25)
    report = lab.jobs.purge()
    assert (report.pieces, report.piece_bytes, report.uploads) == (1, len(data), 1 if how == "abandoned" else 0)
    if how == "abandoned":
        assert lab.objects() == []
    else:
        (blob,) = lab.objects()
        assert blob == lab.blob_item(digest_of(data))["key"]
        assert fetch_blob(lab.client, REPO, digest_of(data)) == data
    # Each hour is listed once: the next purge has nothing to list.
    assert "s3.ListObjectsV2" not in AwsCallCounter(lab.aws.s3).during(lab.jobs.purge)


def test_pieces_folded_into_a_part_whose_delete_died_are_swept(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk that filled a part committed, then died deleting the pieces the part absorbed."""
    data = os.urandom(2 * CHUNK)
    location = patch(lab, start_upload(lab.client, REPO), data[:CHUNK], 0)
    died(monkeypatch, lab.registry.blobs, "delete")
    ranged = {"Content-Range": f"{CHUNK}-{2 * CHUNK - 1}"}
    assert lab.client.patch(location, body=data[CHUNK:], headers=ranged).status == 500
    status = lab.client.get(location)
    assert status.status == 204 and status.header("Range") == f"0-{2 * CHUNK - 1}"  # it had committed
    assert lab.client.put(f"{location}?digest={digest_of(data)}").status == 201
    lab.clock.later(26)
    report = lab.jobs.purge()
    assert (report.pieces, report.piece_bytes) == (1, CHUNK)
    assert fetch_blob(lab.client, REPO, digest_of(data)) == data
    assert lab.objects() == [lab.blob_item(digest_of(data))["key"]]


def test_a_dry_run_counts_orphaned_pieces_and_keeps_them(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    location = start_upload(lab.client, REPO)
    died(monkeypatch, lab.registry.meta, "commit_upload")
    lab.client.patch(location, body=b"orphan")
    patch(lab, location, b"kept", 0)  # a live upload's piece in the same hour
    lab.clock.later(3)
    lines: list[str] = []
    report = lab.jobs.purge(dry_run=True, notify=lines.append)
    assert (report.pieces, report.uploads, len(lab.objects())) == (1, 0, 2)
    assert any(line.startswith("piece blobs/pieces/") for line in lines)
    assert lab.jobs.purge().pieces == 1  # the dry run did not move the mark
    assert len(lab.objects()) == 1 and lab.client.put(f"{location}?digest={digest_of(b'kept')}").status == 201


def test_multipart_uploads_no_record_names_are_aborted_once_no_request_can_record_them(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 started a multipart upload whose id the registry never learnt: its answer was lost
    (the request then failed), or botocore sent the request again and S3 started a second one.
    Both are aborted by the purge once no request can still record them; the live upload's
    own is not, and it finishes."""
    data = os.urandom(2 * CHUNK)
    location = patch(lab, start_upload(lab.client, REPO), data[:CHUNK], 0)
    original = lab.registry.blobs.start_multipart

    def answer_lost(key: str) -> str:
        monkeypatch.setattr(lab.registry.blobs, "start_multipart", sent_twice)
        original(key)
        raise ConnectionError("read timeout: CreateMultipartUpload's answer was lost")

    def sent_twice(key: str) -> str:
        original(key)
        return original(key)

    monkeypatch.setattr(lab.registry.blobs, "start_multipart", answer_lost)
    ranged = {"Content-Range": f"{CHUNK}-{2 * CHUNK - 1}"}
    assert lab.client.patch(location, body=data[CHUNK:], headers=ranged).status == 500
    location = patch(lab, location, data[CHUNK:], CHUNK)  # the client's retry: S3 starts two more
    assert len(open_multipart_uploads(lab.aws, lab.bucket)) == 3
    unrelated = lab.aws.s3.create_multipart_upload(Bucket=lab.bucket, Key="cache/not-an-upload")["UploadId"]
    lab.clock.later(1)
    assert lab.jobs.purge().multipart == 0  # a request may still record them
    lab.clock.later(2)
    lines: list[str] = []
    assert lab.jobs.purge(dry_run=True, notify=lines.append).multipart == 2
    assert len(open_multipart_uploads(lab.aws, lab.bucket)) == 4
    assert sum(line.startswith("multipart upload ") for line in lines) == 2
    report = lab.jobs.purge()
    assert (report.multipart, report.uploads) == (2, 0)
    record = lab.registry.meta.get_upload(location.rsplit("/", 1)[1])
    assert record is not None
    assert sorted(open_multipart_uploads(lab.aws, lab.bucket)) == sorted([record.multipart_id, unrelated])
    assert lab.client.put(f"{location}?digest={digest_of(data)}").status == 201
    assert fetch_blob(lab.client, REPO, digest_of(data)) == data
    assert open_multipart_uploads(lab.aws, lab.bucket) == [unrelated]


def test_manifest_bodies_in_s3_that_requests_left_unsettled_are_deleted_unless_named(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A push that died after writing its body to S3 (before its transaction), and a delete that
    died after its transaction (before deleting the body), each leave a body no record names;
    a push whose transaction's answer was lost leaves one its record does name."""
    monkeypatch.setattr("chalicelib.manifests.service.INLINE_LIMIT", 0)  # every body goes to S3
    doomed, _ = lab.push_image(REPO, "doomed", [b"doomed layer"])
    _, kept_body = lab.push_image(REPO, "kept", [b"kept layer"])
    died(monkeypatch, lab.registry.blobs, "delete")
    assert lab.client.delete(f"/v2/{REPO}/manifests/{doomed}").status == 500  # after its transaction
    assert lab.client.get(f"/v2/{REPO}/manifests/{doomed}").status == 404
    died(monkeypatch, lab.registry.meta, "put_manifest")
    never = manifest_body(digest_of(b"{}"), [(digest_of(b"kept layer"), len(b"kept layer"))], annotations={"a": "b"})
    assert lab.put_manifest(REPO, "never", never).status == 500  # before its transaction
    original = lab.registry.meta.put_manifest

    def answer_lost(*args: Any, **kwargs: Any) -> bool:
        monkeypatch.setattr(lab.registry.meta, "put_manifest", original)
        original(*args, **kwargs)
        raise ConnectionError("read timeout: the transaction's answer was lost")

    monkeypatch.setattr(lab.registry.meta, "put_manifest", answer_lost)
    stored = manifest_body(digest_of(b"{}"), [(digest_of(b"kept layer"), len(b"kept layer"))], annotations={"c": "d"})
    assert lab.put_manifest(REPO, "stored", stored).status == 500
    bodies = [key for key in lab.objects() if key.startswith("manifests/")]
    assert len(bodies) == 4  # kept, and the three left unsettled
    lab.clock.later(1)
    assert lab.jobs.purge().bodies == 0  # a request may still settle them
    lab.clock.later(2)
    lines: list[str] = []
    assert lab.jobs.purge(dry_run=True, notify=lines.append).bodies == 2
    assert [key for key in lab.objects() if key.startswith("manifests/")] == bodies
    assert sum(line.startswith("manifest body manifests/") for line in lines) == 2
    assert lab.jobs.purge().bodies == 2
    assert len([key for key in lab.objects() if key.startswith("manifests/")]) == 2
    lab.pulls_exactly(REPO, "kept", kept_body)
    lab.pulls_exactly(REPO, "stored", stored)
    assert lab.client.get(f"/v2/{REPO}/manifests/never").status == 404
    assert lab.jobs.purge().bodies == 0  # settled: the next run has nothing to look at
