"""Direct uploads (docs/direct-upload.md) through the handler and moto: parts go straight to
S3 by presigned URL, S3's notification reaches the verifier through SQS, and the blob
appears only once verified."""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import replace
from typing import Any

import pytest
import requests

from berth.local.provision import provision_verify_queue
from berth.local.verifier import deliver
from chalicelib.digest import resumable
from chalicelib.registry import Registry
from chalicelib.uploads.parts import MIN_PART
from tests.api.oci_fixtures import assert_oci_error
from tests.conftest import ApiClient
from tests.helpers import MiB, bucket_keys, digest_of, fetch_blob, open_multipart_uploads

REPO = "team/big"


@pytest.fixture
def direct(aws: Any, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    queue = f"verify-{uuid.uuid4().hex[:12]}"
    url = provision_verify_queue(aws.s3, aws.sqs, registry.settings.bucket, queue)
    wired = Registry.build(replace(registry.settings, verify_queue=queue, verify_queue_url=url), aws)
    import app as app_module

    monkeypatch.setattr(app_module, "registry", wired)
    return wired


def verify(direct: Registry, aws: Any) -> int:
    """What Lambda's SQS trigger does: every queued message to verify_blob."""
    import app as app_module

    return deliver(lambda: contextlib.nullcontext(app_module.app), aws.sqs, direct.settings.verify_queue_url or "")


def start(client: ApiClient, size: int, digest: str | None = None) -> Any:
    query = f"berth-direct={size}" + (f"&digest={digest}" if digest else "")
    return client.post(f"/v2/{REPO}/blobs/uploads/?{query}")


def send_parts(client: ApiClient, location: str, data: bytes, skip: set[int] = frozenset()) -> dict[str, Any]:
    listing = client.get(f"{location}/parts")
    assert listing.status == 200, listing.body
    body = listing.json()
    size = body["partSize"]
    for entry in body["urls"]:
        if entry["number"] in skip:
            continue
        part = data[(entry["number"] - 1) * size : entry["number"] * size]
        assert requests.put(entry["url"], data=part, timeout=60).status_code == 200
    return dict(body)


@pytest.mark.parametrize("resumable_hash", [True, False])
def test_a_big_blob_goes_straight_to_s3_and_appears_once_verified(
        client: ApiClient, direct: Registry, aws: Any, monkeypatch: pytest.MonkeyPatch, resumable_hash: bool) -> None:
    if not resumable_hash:
        monkeypatch.setattr(resumable, "available", lambda: False)
    data = os.urandom(MIN_PART + 3 * MiB)
    started = start(client, len(data))
    assert started.status == 202
    assert started.header("Berth-Part-Size") == str(MIN_PART) and started.header("Berth-Part-Count") == "2"
    location = started.header("Location")
    listing = send_parts(client, location, data)
    assert listing["partCount"] == 2 and [u["number"] for u in listing["urls"]] == [1, 2]
    finished = client.put(f"{location}?digest={digest_of(data)}")
    assert finished.status == 202 and finished.header("Berth-Verification") == "pending"
    assert finished.header("Location") == f"/v2/{REPO}/blobs/{digest_of(data)}"
    assert client.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status == 404  # not before it is verified
    status = client.get(location)
    assert status.status == 204 and status.header("Berth-Verification") == "pending"
    assert verify(direct, aws) >= 1
    assert client.head(f"/v2/{REPO}/blobs/{digest_of(data)}").header("Content-Length") == str(len(data))
    assert fetch_blob(client, REPO, digest_of(data)) == data
    assert client.get(location).status == 404  # the upload is done
    assert open_multipart_uploads(aws, direct.settings.bucket) == []


def test_a_mismatch_is_rejected_and_its_object_deleted(client: ApiClient, direct: Registry, aws: Any) -> None:
    data = os.urandom(MIN_PART + 10)
    location = start(client, len(data)).header("Location")
    send_parts(client, location, data)
    wrong = digest_of(b"not these bytes")
    assert client.put(f"{location}?digest={wrong}").status == 202
    verify(direct, aws)
    status = client.get(location)
    assert status.status == 400 and status.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert client.head(f"/v2/{REPO}/blobs/{wrong}").status == 404
    assert bucket_keys(aws, direct.settings.bucket) == []


def test_missing_parts_are_named_and_resumable(client: ApiClient, direct: Registry, aws: Any) -> None:
    data = os.urandom(2 * MIN_PART + 5)
    location = start(client, len(data)).header("Location")
    send_parts(client, location, data, skip={2})
    refused = client.put(f"{location}?digest={digest_of(data)}")
    assert refused.status == 400
    assert refused.json()["errors"][0]["detail"] == {"missing": [2]}
    listing = client.get(f"{location}/parts?first=2&count=1").json()
    assert [p["number"] for p in listing["uploaded"]] == [1, 3]
    assert [u["number"] for u in listing["urls"]] == [2]
    send_parts(client, location, data, skip={1, 3})
    assert client.put(f"{location}?digest={digest_of(data)}").status == 202
    verify(direct, aws)
    assert fetch_blob(client, REPO, digest_of(data)) == data


def test_verification_continues_across_invocations(client: ApiClient, direct: Registry, aws: Any) -> None:
    """A blob too big for one invocation: the verifier checkpoints the SHA-256 state and the
    offset, asks to be woken again, and the next invocation carries on."""
    data = os.urandom(MIN_PART + 2 * MiB)
    location = start(client, len(data)).header("Location")
    send_parts(client, location, data)
    client.put(f"{location}?digest={digest_of(data)}")
    uuid_ = location.rsplit("/", 1)[1]
    assert direct.verifier.run(uuid_, should_stop=lambda: True).startswith("continued at ")
    state = direct.meta.get_upload(uuid_)
    assert state is not None and 0 < state.offset < len(data)
    assert client.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status == 404
    verify(direct, aws)  # the S3 notification finds it mid-way; the continuation message too
    assert fetch_blob(client, REPO, digest_of(data)) == data


def test_a_blob_the_repository_has_needs_no_upload(client: ApiClient, direct: Registry) -> None:
    blob = b"already here"
    client.post(f"/v2/{REPO}/blobs/uploads/?digest={digest_of(blob)}", body=blob)
    response = start(client, len(blob), digest_of(blob))
    assert response.status == 201 and response.header("Docker-Content-Digest") == digest_of(blob)


@pytest.mark.parametrize("size", ["0", "-1", "x", str(10_000 * 5 * 1024**3 + 1), ""])
def test_impossible_sizes_are_refused(client: ApiClient, direct: Registry, size: str) -> None:
    response = start(client, size)  # type: ignore[arg-type]
    assert response.status == 400 and response.json()["errors"][0]["code"] == "SIZE_INVALID"


def test_a_direct_upload_takes_no_patch_and_can_be_cancelled(client: ApiClient, direct: Registry, aws: Any) -> None:
    location = start(client, MIN_PART * 2).header("Location")
    refused = client.patch(location, body=b"bytes")
    assert refused.status == 400 and refused.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    assert open_multipart_uploads(aws, direct.settings.bucket)
    assert client.delete(location).status == 204
    assert open_multipart_uploads(aws, direct.settings.bucket) == []
    assert client.get(f"{location}/parts").status == 404


def test_parts_of_a_plain_upload_are_refused(client: ApiClient, direct: Registry) -> None:
    location = client.post(f"/v2/{REPO}/blobs/uploads/").header("Location")
    assert client.get(f"{location}/parts").status == 400


# ---- part 1 re-sent while the finish runs (issue 11, point 6) -----------------------------------
# A client holds presigned UploadPart URLs until they expire, so it can replace any part at any
# moment, also while a finish checks the parts and completes the object.

ORIGINAL_PART_2 = 3 * MiB


def _all_sent(client: ApiClient, data: bytes) -> tuple[str, str]:
    """A direct upload with every part sent: its Location, and the URL that sends part 1 again."""
    location = start(client, len(data)).header("Location")
    send_parts(client, location, data)
    return location, str(client.get(f"{location}/parts?first=1&count=1").json()["urls"][0]["url"])


def _resend(url: str, data: bytes) -> None:
    assert requests.put(url, data=data, timeout=60).status_code == 200


def _assert_no_blob_or_a_true_one(client: ApiClient, direct: Registry, aws: Any, digest: str) -> None:
    """What a client may ever see of the blob: none, or one whose size and digest describe its bytes."""
    verify(direct, aws)
    head = client.head(f"/v2/{REPO}/blobs/{digest}")
    if head.status == 404:
        return
    assert head.status == 200
    data = fetch_blob(client, REPO, digest)
    assert head.header("Content-Length") == str(len(data)) and digest_of(data) == digest


@pytest.mark.parametrize("claimed", ["original", "resent"])
@pytest.mark.parametrize("resent_size", [MIN_PART, MIN_PART + MiB])
def test_a_part_resent_between_the_check_and_the_completion(
        client: ApiClient, direct: Registry, aws: Any, monkeypatch: pytest.MonkeyPatch, claimed: str,
        resent_size: int) -> None:
    """The finish lists the parts S3 holds and checks their sizes; then part 1 changes. What it
    completes must be what it checked, or nothing."""
    data = os.urandom(MIN_PART + ORIGINAL_PART_2)
    other = os.urandom(resent_size)
    location, url = _all_sent(client, data)
    listed = direct.blobs.list_parts

    def listing_then_resend(key: str, upload_id: str) -> dict[int, tuple[str, int]]:
        parts = listed(key, upload_id)
        monkeypatch.setattr(direct.blobs, "list_parts", listed)  # once: the finish's own listing
        _resend(url, other)
        return parts

    monkeypatch.setattr(direct.blobs, "list_parts", listing_then_resend)
    digest = digest_of(data if claimed == "original" else other + data[MIN_PART:])
    finished = client.put(f"{location}?digest={digest}")
    assert finished.status in (202, 400), finished.body
    if finished.status == 400:
        assert_oci_error(finished, 400, "BLOB_UPLOAD_INVALID")
    _assert_no_blob_or_a_true_one(client, direct, aws, digest)


def test_a_part_resent_just_before_s3_completes_is_a_4xx_and_the_upload_can_finish_again(
        client: ApiClient, direct: Registry, aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 refuses a completion naming a part's old ETag (InvalidPart): the finish that lost
    the race says so with a 4xx, and the upload stays open to be finished again."""
    data = os.urandom(MIN_PART + ORIGINAL_PART_2)
    location, url = _all_sent(client, data)
    complete = aws.s3.complete_multipart_upload

    def resend_then_complete(**kwargs: Any) -> Any:
        monkeypatch.setattr(aws.s3, "complete_multipart_upload", complete)
        _resend(url, os.urandom(MIN_PART))
        return complete(**kwargs)

    monkeypatch.setattr(aws.s3, "complete_multipart_upload", resend_then_complete)
    refused = client.put(f"{location}?digest={digest_of(data)}")
    assert_oci_error(refused, 400, "BLOB_UPLOAD_INVALID")
    _assert_no_blob_or_a_true_one(client, direct, aws, digest_of(data))
    assert client.get(location).status == 204  # still open
    _resend(url, data[:MIN_PART])
    assert client.put(f"{location}?digest={digest_of(data)}").status == 202
    verify(direct, aws)
    assert client.head(f"/v2/{REPO}/blobs/{digest_of(data)}").header("Content-Length") == str(len(data))
    assert fetch_blob(client, REPO, digest_of(data)) == data


def test_a_completed_object_of_another_size_is_refused(
        client: ApiClient, direct: Registry, aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Were S3 (or a stand-in for it) to complete with parts other than the ones named, the
    object's size would differ from the declared one: the finish refuses it and nothing is
    promoted, whatever digest the client claimed."""
    data = os.urandom(MIN_PART + ORIGINAL_PART_2)
    other = os.urandom(MIN_PART + MiB)
    location, url = _all_sent(client, data)
    complete = aws.s3.complete_multipart_upload

    def complete_with_whatever_is_there(**kwargs: Any) -> Any:
        _resend(url, other)
        held = aws.s3.list_parts(Bucket=kwargs["Bucket"], Key=kwargs["Key"], UploadId=kwargs["UploadId"])["Parts"]
        kwargs["MultipartUpload"] = {"Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in held]}
        return complete(**kwargs)

    monkeypatch.setattr(aws.s3, "complete_multipart_upload", complete_with_whatever_is_there)
    digest = digest_of(other + data[MIN_PART:])
    refused = client.put(f"{location}?digest={digest}")
    assert_oci_error(refused, 400, "SIZE_INVALID")
    verify(direct, aws)
    assert client.head(f"/v2/{REPO}/blobs/{digest}").status == 404
    assert_oci_error(client.get(location), 400, "DIGEST_INVALID")
    assert bucket_keys(aws, direct.settings.bucket) == []


def test_the_verifier_promotes_only_bytes_of_the_declared_size(client: ApiClient, direct: Registry, aws: Any) -> None:
    """The verifier, too, checks the object's size: a record whose declared size is not the
    object's (however it came about) promotes nothing."""
    data = os.urandom(MIN_PART + ORIGINAL_PART_2)
    location = start(client, len(data)).header("Location")
    send_parts(client, location, data)
    assert client.put(f"{location}?digest={digest_of(data)}").status == 202
    uuid_ = location.rsplit("/", 1)[1]
    state = direct.meta.get_upload(uuid_)
    assert state is not None and state.direct is not None
    claimed = replace(state, direct=replace(state.direct, size=len(data) + 1))
    assert direct.meta.commit_upload(claimed, expected_offset=state.offset)
    verify(direct, aws)
    assert client.head(f"/v2/{REPO}/blobs/{digest_of(data)}").status == 404
    assert_oci_error(client.get(location), 400, "DIGEST_INVALID")


def test_of_two_racing_finishes_one_completes_and_the_other_is_a_4xx(
        client: ApiClient, direct: Registry, aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second finish runs whole between the first one's part listing and its completion:
    the first must neither complete again nor open the upload the second completed."""
    data = os.urandom(MIN_PART + ORIGINAL_PART_2)
    location, _ = _all_sent(client, data)
    listed = direct.blobs.list_parts
    second: list[Any] = []

    def listing_then_another_finish(key: str, upload_id: str) -> dict[int, tuple[str, int]]:
        parts = listed(key, upload_id)
        monkeypatch.setattr(direct.blobs, "list_parts", listed)
        second.append(client.put(f"{location}?digest={digest_of(data)}"))
        return parts

    monkeypatch.setattr(direct.blobs, "list_parts", listing_then_another_finish)
    first = client.put(f"{location}?digest={digest_of(data)}")
    assert second[0].status == 202, second[0].body
    assert_oci_error(first, 404, "BLOB_UPLOAD_UNKNOWN")
    verify(direct, aws)
    assert client.head(f"/v2/{REPO}/blobs/{digest_of(data)}").header("Content-Length") == str(len(data))
    assert fetch_blob(client, REPO, digest_of(data)) == data


def test_an_upload_s3_aborted_is_unknown(client: ApiClient, direct: Registry, aws: Any) -> None:
    """The bucket's lifecycle rule aborts multipart uploads left incomplete: what the record
    still names is gone, and the listing and the finish say so with a 404."""
    data = os.urandom(MIN_PART + ORIGINAL_PART_2)
    location, _ = _all_sent(client, data)
    state = direct.uploads.current(location.rsplit("/", 1)[1])
    assert state is not None and state.multipart_id is not None
    aws.s3.abort_multipart_upload(Bucket=direct.settings.bucket, Key=state.object_key, UploadId=state.multipart_id)
    assert_oci_error(client.get(f"{location}/parts"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(client.put(f"{location}?digest={digest_of(data)}"), 404, "BLOB_UPLOAD_UNKNOWN")
