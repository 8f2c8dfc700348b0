"""Attacks on issue 14's last points: the purge's sweep of multipart uploads no record names
must never abort one a live upload (chunked or direct) still needs, whatever it races; and a
started upload that botocore sent twice must be recognised whatever the clock says."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from typing import Any

import pytest

from berth.local.provision import provision_verify_queue
from chalicelib.cache.service import CACHE_PREFIX
from chalicelib.registry import Registry
from chalicelib.storage.clients import AwsClients
from chalicelib.uploads.parts import MIN_PART
from tests.api.faults import Injector
from tests.api.lifecycle_support import Lab
from tests.api.test_direct import send_parts, verify
from tests.api.test_faults import World, injector  # noqa: F401, F811 (the fixture)
from tests.api.test_lifecycle_purge import CHUNK, patch  # two chunks fill an S3 part
from tests.helpers import digest_of, fetch_blob, open_multipart_uploads, start_upload

REPO = "team/big"
PAST_THE_LAG = 3  # hours: past the sweep's two, well short of the upload's maximum age


@pytest.fixture
def lab(registry: Registry, aws: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> Lab:
    """The lifecycle lab on a registry that also takes direct uploads (a verify queue)."""
    queue = f"verify-{uuid.uuid4().hex[:12]}"
    url = provision_verify_queue(aws.s3, aws.sqs, registry.settings.bucket, queue)
    wired = Registry.build(replace(registry.settings, verify_queue=queue, verify_queue_url=url), aws)
    lab = Lab(wired, aws, client, monkeypatch)
    lab.configure(upload_max_age_hours=24)
    return lab


def multipart_started(lab: Lab) -> tuple[str, bytes]:
    """A chunked upload two chunks in: its S3 multipart upload holds a part, a piece waits."""
    data = os.urandom(2 * CHUNK)
    location = patch(lab, start_upload(lab.client, REPO), data[:CHUNK], 0)
    location = patch(lab, location, data[CHUNK:], CHUNK)
    assert len(open_multipart_uploads(lab.aws, lab.bucket)) == 1
    return location, data


def test_a_direct_upload_open_for_hours_keeps_its_multipart_upload_and_finishes(lab: Lab) -> None:
    """A direct upload's parts go to S3 for as long as the client takes (hours, for a big
    blob): its record names the multipart upload from the POST on, so the sweep leaves it."""
    data = os.urandom(MIN_PART + 10)
    started = lab.client.post(f"/v2/{REPO}/blobs/uploads/?berth-direct={len(data)}")
    assert started.status == 202, started.body
    location = started.header("Location")
    send_parts(lab.client, location, data, skip={2})
    lab.clock.later(PAST_THE_LAG)
    report = lab.jobs.purge()
    assert (report.multipart, report.uploads) == (0, 0)
    send_parts(lab.client, location, data, skip={1})
    assert lab.client.put(f"{location}?digest={digest_of(data)}").status == 202
    verify(lab.registry, lab.aws)
    assert fetch_blob(lab.client, REPO, digest_of(data)) == data


def test_a_finish_under_way_keeps_its_multipart_upload_while_the_sweep_runs(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The purge runs (hours after the upload started) while a finish holds its claim and is
    about to complete the multipart upload: the record still names it, so it stays."""
    location, data = multipart_started(lab)
    complete = lab.registry.blobs.complete_multipart
    reports = []

    def purge_first(key: str, upload_id: str, numbers: list[int]) -> None:
        lab.clock.later(PAST_THE_LAG)
        reports.append(lab.jobs.purge())
        complete(key, upload_id, numbers)

    monkeypatch.setattr(lab.registry.blobs, "complete_multipart", purge_first)
    assert lab.client.put(f"{location}?digest={digest_of(data)}").status == 201
    assert [r.multipart for r in reports] == [0]
    assert fetch_blob(lab.client, REPO, digest_of(data)) == data


@pytest.mark.parametrize("ending", ["finished", "cancelled"])
def test_an_upload_ended_between_the_listing_and_the_records_loses_nothing(
        ending: str, lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep lists the multipart upload, then the upload ends before it reads the record:
    the sweep finds no record and aborts an upload that is over. A completed upload's blob
    must stay whole; a cancelled one was aborted already."""
    location, data = multipart_started(lab)
    lab.clock.later(PAST_THE_LAG)
    named = lab.jobs.store.multipart_named
    answers = []

    def upload_ends_first(uploads: dict[str, str]) -> set[str]:
        if not uploads or answers:  # the listing of the other prefix, or a second call
            return named(uploads)
        if ending == "finished":
            answers.append(lab.client.put(f"{location}?digest={digest_of(data)}").status)
        else:
            answers.append(lab.client.delete(location).status)
        return named(uploads)

    monkeypatch.setattr(lab.jobs.store, "multipart_named", upload_ends_first)
    lab.jobs.purge()
    assert answers == [201 if ending == "finished" else 204]
    assert open_multipart_uploads(lab.aws, lab.bucket) == []
    if ending == "finished":
        assert fetch_blob(lab.client, REPO, digest_of(data)) == data
    else:
        assert lab.objects() == []


def test_the_pull_through_caches_copies_under_way_are_not_the_sweeps(lab: Lab) -> None:
    """The cache's copier starts multipart uploads of its own (cache/blobs/<hex>), for copies
    that run across invocations for hours; their records are not upload records."""
    key = f"{CACHE_PREFIX}blobs/{uuid.uuid4().hex}"
    copying = lab.aws.s3.create_multipart_upload(Bucket=lab.bucket, Key=key)["UploadId"]
    lab.clock.later(PAST_THE_LAG)
    assert lab.jobs.purge().multipart == 0
    assert open_multipart_uploads(lab.aws, lab.bucket) == [copying]


class Ticking:
    """A clock whose every reading is a second later than the last: what two readings a few
    microseconds apart see when they fall on either side of a second."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        self.now += 1
        return self.now


def test_a_started_upload_sent_twice_is_recognised_across_a_second_boundary(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore sends the POST's PutItem again after its answer was lost; the retry finds the
    record there and compares it with what it wrote. That comparison must be of the upload,
    not of the moment it is made (the `touched` time is recomputed for each side)."""
    attempts: list[dict[str, Any]] = []

    def the_put_of_an_upload(call: dict[str, Any]) -> bool:
        attempts.append(call)
        return call["Item"]["sk"] == {"S": "upload"}

    def first_attempt_lands() -> None:
        lab.aws.dynamodb.put_item(**attempts[-1])

    lab.interjections.before("put_item", the_put_of_an_upload, first_attempt_lands)
    monkeypatch.setattr("chalicelib.storage.uploads.time", Ticking())
    started = lab.client.post(f"/v2/{REPO}/blobs/uploads/")
    assert started.status == 202, started.body
    assert lab.client.get(started.header("Location")).status == 204


def test_a_cancel_botocore_sent_again_gets_the_answer_its_first_attempt_earned(
        aws: AwsClients, injector: Injector, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 (the fixture)
    """As a tag's delete now is: the cancel took effect, its answer was lost, and botocore's
    retry finds nothing to delete. The client asked to cancel an upload it holds: a 204."""

    def run(at: int) -> list[str]:
        world = World(aws, injector, monkeypatch, direct=False)
        try:
            location = world.client.post(f"/v2/{REPO}/blobs/uploads/").header("Location")
            assert world.client.patch(location, body=b"a piece", headers={"Content-Range": "0-6"}).status == 202
            with injector.armed_at(at, "retried") as made:
                answer = world.client.delete(location)
            assert answer.status == 204, (made, answer.status, answer.body)
            assert world.client.get(location).status == 404
            return list(made)
        finally:
            world.drop()

    run(run(0).index("dynamodb.TransactWriteItems") + 1)
