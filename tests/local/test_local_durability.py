"""The local mode's own AWS (moto in its process, berth/local/motoguard.py) over real sockets:
memory follows what is stored, not how many writes it took, and S3's answers to a multipart
upload that is finished are S3's."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from berth.target import local_state_path
from tests.helpers import MiB
from tests.local import LocalServer, local_server
from tests.local.moto_load import small_registry, transactions


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with local_server(tmp_path_factory.mktemp("durability")) as running:
        yield running


class Moto:
    """Clients of the local mode's moto, from the state file `make run` writes for `berth`."""

    def __init__(self, port: int) -> None:
        state = json.loads(local_state_path(port).read_text())
        self.bucket = state["bucket"]
        # No retries: each answer is moto's own, as a client first sees it.
        options: dict[str, Any] = {"endpoint_url": state["endpoint"], "region_name": "us-east-1",
                                   "aws_access_key_id": "local", "aws_secret_access_key": "local",
                                   "config": Config(retries={"max_attempts": 1})}
        self.s3 = boto3.client("s3", **options)
        self.dynamodb = boto3.client("dynamodb", **options)


@pytest.fixture(scope="module")
def moto(server: LocalServer) -> Moto:
    return Moto(server.port)


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_memory_grows_with_what_is_stored_not_with_transactions(server: LocalServer, moto: Moto) -> None:
    """moto on its own keeps every item it ever wrote, and a copy of the table per
    transaction (~0.5 MiB each here): 400 transactions over a small table took ~200 MiB."""
    table = f"memory-{uuid.uuid4().hex[:8]}"
    stored = small_registry(moto.dynamodb, table)
    before = resident_bytes(server.process.pid)
    transactions(moto.dynamodb, table, 400)
    grown = resident_bytes(server.process.pid) - before
    assert grown < 32 * MiB + 16 * stored, f"{grown / MiB:.0f} MiB more after 400 transactions"


def multipart_upload(moto: Moto, key: str) -> tuple[str, list[dict[str, Any]]]:
    """A multipart upload of one part: its id, and the parts list that completes it."""
    upload_id = str(moto.s3.create_multipart_upload(Bucket=moto.bucket, Key=key)["UploadId"])
    part = moto.s3.upload_part(Bucket=moto.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"a" * (5 * MiB))
    return upload_id, [{"PartNumber": 1, "ETag": part["ETag"]}]


def refused_as_no_such_upload(moto: Moto, key: str, upload_id: str, parts: list[dict[str, Any]],
                              operations: tuple[str, ...]) -> None:
    s3, target = moto.s3, {"Bucket": moto.bucket, "Key": key, "UploadId": upload_id}
    moto.s3.put_object(Bucket=moto.bucket, Key=f"{key}.piece", Body=b"piece")
    attempts = {
        "UploadPart": lambda: s3.upload_part(**target, PartNumber=2, Body=b"tail"),
        "UploadPartCopy": lambda: s3.upload_part_copy(**target, PartNumber=2,
                                                      CopySource={"Bucket": moto.bucket, "Key": f"{key}.piece"}),
        "ListParts": lambda: s3.list_parts(**target),
        "CompleteMultipartUpload": lambda: s3.complete_multipart_upload(**target, MultipartUpload={"Parts": parts}),
    }
    for operation in operations:
        with pytest.raises(s3.exceptions.ClientError) as refused:
            attempts[operation]()
        error = refused.value.response
        assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("NoSuchUpload", 404), operation


def test_s3_says_no_such_upload_to_parts_of_a_completed_upload(moto: Moto) -> None:
    """A completion repeated while its object stands succeeds again, as S3's does (a client
    retries one whose answer it lost); once the object is gone, it is NoSuchUpload too."""
    key = f"blobs/{uuid.uuid4()}"
    upload_id, parts = multipart_upload(moto, key)
    target = {"Bucket": moto.bucket, "Key": key, "UploadId": upload_id, "MultipartUpload": {"Parts": parts}}
    etag = moto.s3.complete_multipart_upload(**target)["ETag"]
    refused_as_no_such_upload(moto, key, upload_id, parts, ("UploadPart", "UploadPartCopy", "ListParts"))
    assert moto.s3.complete_multipart_upload(**target)["ETag"] == etag
    moto.s3.delete_object(Bucket=moto.bucket, Key=key)
    refused_as_no_such_upload(moto, key, upload_id, parts, ("CompleteMultipartUpload",))


def test_s3_says_no_such_upload_to_anything_on_an_aborted_upload(moto: Moto) -> None:
    key = f"blobs/{uuid.uuid4()}"
    upload_id, parts = multipart_upload(moto, key)
    moto.s3.abort_multipart_upload(Bucket=moto.bucket, Key=key, UploadId=upload_id)
    refused_as_no_such_upload(moto, key, upload_id, parts,
                              ("UploadPart", "UploadPartCopy", "ListParts", "CompleteMultipartUpload"))
