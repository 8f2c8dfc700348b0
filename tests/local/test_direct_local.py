"""The local mode runs the whole direct path as deployed: parts to (moto's) S3 by presigned
URL, S3's notification through SQS to the real verify_blob handler, the blob visible after."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
import requests

from tests.local import local_server

pytestmark = pytest.mark.e2e


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
