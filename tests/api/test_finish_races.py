"""Two finishes of the same upload and digest, overlapping through the handler (two app copies,
as two Lambda containers): the one that reaches S3 after the other completed the multipart
upload hears NoSuchUpload, as from S3, and answers as a registry should, never with a 500."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from berth.local.apigateway import GatewayResponse
from chalicelib.registry import Registry
from tests.conftest import ApiClient
from tests.helpers import MiB, bucket_keys, digest_of, fetch_blob, load_app, open_multipart_uploads, start_upload

REPO = "team/app"
WAIT = 30


def test_the_later_of_two_finishes_of_one_upload_gets_no_500(
        registry: Registry, client: Any, aws: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """B reads the upload, then A claims it, copies the last piece in and completes the
    multipart upload; then B claims (same digest), and its UploadPartCopy finds the upload
    completed."""
    data = os.urandom(8 * MiB)  # two chunks of 4 MiB: a part, and a piece copied in at the end
    location = start_upload(client, REPO)
    for start in (0, 4 * MiB):
        response = client.patch(location, body=data[start : start + 4 * MiB],
                                headers={"Content-Range": f"{start}-{start + 4 * MiB - 1}"})
        assert response.status == 202, response.body
        location = response.header("Location")
    finish = f"{location}?digest={digest_of(data)}"
    other = ApiClient(load_app(registry))

    b_read, a_completed = threading.Event(), threading.Event()
    answers: dict[str, GatewayResponse] = {}
    read_upload, complete = registry.meta.get_upload, registry.blobs.complete_multipart

    def reads_then_waits(uuid: str) -> Any:
        state = read_upload(uuid)
        if threading.current_thread().name == "B" and not b_read.is_set():
            b_read.set()
            assert a_completed.wait(WAIT)
        return state

    def completes_then_lets_b_go(key: str, upload_id: str, numbers: list[int]) -> None:
        complete(key, upload_id, numbers)
        if threading.current_thread().name != "B":
            a_completed.set()
            b.join(WAIT)

    monkeypatch.setattr(registry.meta, "get_upload", reads_then_waits)
    monkeypatch.setattr(registry.blobs, "complete_multipart", completes_then_lets_b_go)
    b = threading.Thread(target=lambda: answers.update(B=other.put(finish)), name="B")
    b.start()
    assert b_read.wait(WAIT)
    answers["A"] = client.put(finish)
    b.join(WAIT)

    assert {name: answer.status for name, answer in answers.items()} == {"A": 201, "B": 201}
    assert fetch_blob(client, REPO, digest_of(data)) == data
    assert len(bucket_keys(aws, bucket)) == 1 and open_multipart_uploads(aws, bucket) == []
