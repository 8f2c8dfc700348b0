"""`berth fsck` and `berth gc` against a stage's table and bucket (here: moto's): fsck is clean
after real pushes, read-only without --repair, and with it mends what can be mended and names
what cannot; gc says what its purge did when the collection is busy."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from chalicelib.storage.keys import tag_sk
from chalicelib.storage.table import from_item, to_item
from tests.api.lifecycle_support import Lab, berth
from tests.helpers import MiB, digest_of, push_chunked, start_upload

REPO = "team/app"


@pytest.fixture
def lab(command_lab: Lab) -> Lab:
    return command_lab


def fsck(lab: Lab, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    return berth(lab, capsys, "fsck", *args)


def everything(lab: Lab) -> tuple[list[dict[str, Any]], list[str]]:
    pages = lab.aws.dynamodb.get_paginator("scan").paginate(TableName=lab.table)
    items = sorted((from_item(i) for page in pages for i in page["Items"]), key=lambda i: (i["pk"], i["sk"]))
    return items, sorted(lab.objects())


def test_real_pushes_leave_nothing_to_find(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    lab.push_image(REPO, "1", [b"layer one", b"layer two"])
    lab.push_image("mirror/app", "1", [b"layer one"])
    assert push_chunked(lab.client, REPO, os.urandom(9 * MiB), 4 * MiB).status == 201
    lab.client.patch(start_upload(lab.client, REPO), body=b"in progress")
    status, out = fsck(lab, capsys, "--grace-hours", "0")
    assert status == 0, out
    assert out.splitlines() == ["checked 4 blobs, 2 tags, 2 manifests, 6 links, 1 uploads, 5 objects "
                                "(orphans: older than 0 h)", "clean: every check holds"]


def test_fsck_finds_each_break_repairs_what_it_can_and_only_when_asked(
        lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    image, _ = lab.push_image(REPO, "1", [b"lost layer", b"miscounted layer"], config=b'{"c":1}')
    other, _ = lab.push_image(REPO, "2", [b"untagged layer"])
    db, s3 = lab.aws.dynamodb, lab.aws.s3
    lost = lab.blob_item(digest_of(b"lost layer"))
    assert lost is not None
    s3.delete_object(Bucket=lab.bucket, Key=lost["key"])
    db.update_item(TableName=lab.table, Key=to_item({"pk": f"blob#{digest_of(b'miscounted layer')}", "sk": "blob"}),
                   UpdateExpression="SET refs = :three", ExpressionAttributeValues=to_item({":three": 3}))
    db.delete_item(TableName=lab.table, Key=to_item({"pk": f"repo#{REPO}", "sk": f"manifest#{other}"}))
    s3.put_object(Bucket=lab.bucket, Key="blobs/left-behind", Body=b"nothing names me")
    multipart = s3.create_multipart_upload(Bucket=lab.bucket, Key="blobs/left-open")["UploadId"]
    before = everything(lab)

    status, out = fsck(lab, capsys, "--grace-hours", "0")
    assert status == 1
    lines = [line.split() for line in out.splitlines()[2:]]
    assert sorted((words[0], words[1].rstrip(":")) for words in lines) == sorted([
        ("dangling-tag", f"{REPO}:2"),
        ("missing-object", digest_of(b"lost layer")),
        ("wrong-count", digest_of(b"miscounted layer")),
        ("wrong-count", digest_of(b"untagged layer")),  # the deleted manifest no longer counts them
        ("wrong-count", digest_of(b"{}")),
        ("orphan-object", "blobs/left-behind"),
        ("orphan-multipart", "blobs/left-open"),
    ])
    assert everything(lab) == before  # read-only

    status, out = fsck(lab, capsys, "--grace-hours", "0", "--repair", "--json")
    report = json.loads(out)
    assert status == 1 and [f["kind"] for f in report["remaining"]] == ["missing-object"]
    assert any(line.endswith("left (the bytes are gone: push again what needs them)") for line in report["repaired"])
    assert lab.item(f"repo#{REPO}", tag_sk("2")) is None
    assert lab.blob_item(digest_of(b"miscounted layer"))["refs"] == 1
    assert lab.blob_item(digest_of(b"untagged layer"))["refs"] == 0
    assert "blobs/left-behind" not in lab.objects()
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=lab.bucket).get("Uploads", [])] == []
    assert multipart
    # The image whose layer is lost stays as it is: fsck does not guess.
    assert lab.client.get(f"/v2/{REPO}/manifests/{image}").status == 200


def test_a_link_lost_from_a_tagged_manifest_is_linked_again(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    _, body = lab.push_image(REPO, "1", [b"layer"])
    lab.aws.dynamodb.delete_item(TableName=lab.table,
                                 Key=to_item({"pk": f"repo#{REPO}", "sk": f"link#{digest_of(b'layer')}"}))
    assert lab.client.head(f"/v2/{REPO}/blobs/{digest_of(b'layer')}").status == 404
    status, out = fsck(lab, capsys, "--repair")
    assert status == 0, out
    assert "unlinked-blob" in out and "after repair: clean" in out
    lab.pulls_exactly(REPO, "1", body)


def test_gc_reports_the_purge_it_did_when_the_collection_is_busy(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    location = start_upload(lab.client, REPO)
    assert lab.client.patch(location, body=b"abandoned").status == 202
    lab.backdate(f"upload#{location.rsplit('/', 1)[1]}", "upload", 2, "touched")
    now = int(lab.clock())
    lab.jobs.store.claim("the scheduled one", now, now + 600)
    status, out = berth(lab, capsys, "gc", "--upload-max-age-hours", "1")
    assert status == 1
    assert out.splitlines()[-1] == ("freed: 1 abandoned uploads (9 bytes); nothing collected: another collection "
                                    "is running (the scheduled one?); try again later")
    assert [u for u in lab.jobs.store.scan(("upload#",)) for u in u[0]] == []
