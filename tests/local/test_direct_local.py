"""The local mode runs the whole direct path as deployed: parts to (moto's) S3 by presigned
URL, S3's notification through SQS to the real verify_blob handler, the blob visible after."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import time
from pathlib import Path

import pytest
import requests

from chalicelib.uploads.parts import MIN_PART, MiB
from tests.api.oci_fixtures import SPEC_ERROR_CODES
from tests.local import local_server

pytestmark = pytest.mark.e2e
ROUNDS = 6  # uploads raced
FINISHES = 8  # finishes tried on each while part 1 keeps changing


def test_direct_upload_is_verified_by_the_s3_event_handler(tmp_path: Path) -> None:
    data = os.urandom(20 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with local_server(tmp_path) as server:
        base = f"http://{server.address}"
        started = requests.post(f"{base}/v2/big/layer/blobs/uploads/?berth-direct={len(data)}", timeout=30)
        assert started.status_code == 202, started.text
        location = base + started.headers["Location"]
        listing = requests.get(f"{location}/parts", timeout=30).json()
        size = listing["partSize"]
        for entry in listing["urls"]:
            part = data[(entry["number"] - 1) * size : entry["number"] * size]
            assert requests.put(entry["url"], data=part, timeout=60).status_code == 200
        assert requests.put(f"{location}?digest={digest}", timeout=30).status_code == 202
        deadline = time.monotonic() + 30
        while requests.head(f"{base}/v2/big/layer/blobs/{digest}", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.2)
        assert requests.get(f"{base}/v2/big/layer/blobs/{digest}", timeout=60).content == data


def _resend_until(done: threading.Event, url: str, versions: tuple[bytes, bytes]) -> None:
    with requests.Session() as s3:
        for turn in itertools.cycle(versions):
            if done.is_set():
                return
            s3.put(url, data=turn, timeout=60)  # S3's answer is S3's business


def test_part_1_resent_while_finishing_never_gives_a_500_or_a_blob_of_the_wrong_size(tmp_path: Path) -> None:
    """A thread keeps re-sending part 1 through its presigned URL, alternately its own bytes and
    other bytes of another size, while finishes run. The digest claimed is that of the other
    bytes with part 2: a blob of another size than the one declared, which no finish may
    promote. Every finish is a 202 or a 4xx OCI error; nothing is ever promoted."""
    with local_server(tmp_path) as server:
        base = f"http://{server.address}"
        for _ in range(ROUNDS):
            data = os.urandom(MIN_PART + MiB)
            other = os.urandom(MIN_PART + 2 * MiB)
            digest = "sha256:" + hashlib.sha256(other + data[MIN_PART:]).hexdigest()
            started = requests.post(f"{base}/v2/race/layer/blobs/uploads/?berth-direct={len(data)}", timeout=30)
            location = base + started.headers["Location"]
            urls = {u["number"]: u["url"] for u in requests.get(f"{location}/parts", timeout=30).json()["urls"]}
            assert requests.put(urls[2], data=data[MIN_PART:], timeout=60).status_code == 200
            assert requests.put(urls[1], data=data[:MIN_PART], timeout=60).status_code == 200
            done = threading.Event()
            resender = threading.Thread(target=_resend_until, args=(done, urls[1], (other, data[:MIN_PART])))
            resender.start()
            try:
                for _ in range(FINISHES):
                    finished = requests.put(f"{location}?digest={digest}", timeout=60)
                    assert finished.status_code in (202, 400), (finished.status_code, finished.text)
                    if finished.status_code != 202:
                        assert finished.json()["errors"][0]["code"] in SPEC_ERROR_CODES
                    else:
                        break
            finally:
                done.set()
                resender.join()
            deadline = time.monotonic() + 30
            while requests.get(location, timeout=30).headers.get("Berth-Verification") == "pending":
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.2)
            assert requests.head(f"{base}/v2/race/layer/blobs/{digest}", timeout=30).status_code == 404
            requests.delete(location, timeout=30)
        # moto's S3 answers a part sent to a completed upload with a 500 of its own (and a
        # traceback): only the registry's and the verifier's errors count here.
        assert "unhandled error" not in server.log() and "verify_blob failed" not in server.log(), server.log()
