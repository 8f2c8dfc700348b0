"""The S3 bucket that holds blob bytes and large manifests."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from chalicelib.storage.clients import AwsClients

STREAM_CHUNK = 8 * 1024 * 1024
# A presigned URL ends this long before the credentials that signed it: clocks differ, and the
# client needs a moment to use it.
CREDENTIALS_MARGIN = 60


def presign_lifetime(wanted: int, credentials_expiry: float | None, now: float) -> int:
    """Seconds a presigned URL may claim. S3 refuses a URL once the temporary credentials that
    signed it expire, whatever its X-Amz-Expires says, so a URL never outlives them (less a
    margin); with no expiry known, the configured lifetime stands. At least one second."""
    if credentials_expiry is None:
        return wanted
    left = math.floor(credentials_expiry - now) - CREDENTIALS_MARGIN
    return max(1, min(wanted, left))


class MissingObject(Exception):
    """The object is gone: a concurrent request finished with it first."""


class PartsRefused(Exception):
    """S3 would not complete a multipart upload with the parts named: one was replaced since
    (its ETag changed), or is too small."""


_REFUSED_PARTS = ("InvalidPart", "InvalidPartOrder", "EntityTooSmall")
_NOT_THERE = ("404", "NoSuchKey", "NotFound", "412", "PreconditionFailed")  # 412: not with that ETag


class BlobStore:
    def __init__(self, clients: AwsClients, bucket: str, presign_seconds: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._clients = clients
        self.bucket = bucket
        self._presign_seconds = presign_seconds
        self._clock = clock

    def presign_seconds(self) -> int:
        """The lifetime of a URL presigned now (`presign_lifetime`)."""
        return presign_lifetime(self._presign_seconds, self._clients.credentials_expiry(), self._clock())

    @property
    def _s3(self) -> Any:
        return self._clients.s3

    def put(self, key: str, data: bytes) -> None:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    @contextlib.contextmanager
    def _gone_is_missing(self, key: str) -> Iterator[None]:
        """A piece or multipart upload that vanished mid-request was finished or cancelled by a
        concurrent request: say so as MissingObject rather than as an S3 error."""
        try:
            yield
        except (self._s3.exceptions.NoSuchKey, self._s3.exceptions.NoSuchUpload):
            raise MissingObject(key) from None

    def read(self, key: str) -> bytes:
        with self._gone_is_missing(key):
            return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def size(self, key: str) -> int | None:
        """The object's size; None when there is none."""
        found = self.head(key)
        return found[1] if found else None

    def head(self, key: str, etag: str | None = None) -> tuple[str, int] | None:
        """The object's ETag and size; None when there is none (with `etag`, none with it)."""
        pinned = {"IfMatch": etag} if etag else {}
        try:
            answer = self._s3.head_object(Bucket=self.bucket, Key=key, **pinned)
        except self._s3.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in _NOT_THERE:
                return None
            raise
        return str(answer["ETag"]), int(answer["ContentLength"])

    def stream(self, key: str, start: int = 0, etag: str | None = None) -> Iterator[bytes]:
        """The object's bytes from `start`; with `etag`, only that object's (else MissingObject)."""
        ranged = {"Range": f"bytes={start}-"} if start else {}
        if etag:
            ranged["IfMatch"] = etag
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key, **ranged)["Body"]
        except self._s3.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in _NOT_THERE:
                raise MissingObject(key) from None
            raise
        try:
            yield from body.iter_chunks(STREAM_CHUNK)
        finally:
            body.close()

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            if len(batch) == 1:
                self._s3.delete_object(Bucket=self.bucket, Key=batch[0])
            else:
                self._s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )

    def listing(self, prefix: str) -> Iterator[list[tuple[str, int]]]:
        """Pages of (key, size) of the objects under `prefix`."""
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield [(o["Key"], int(o["Size"])) for o in page.get("Contents", [])]

    def folders(self, prefix: str, after: str) -> Iterator[str]:
        """The "folders" (key parts up to the next `/`) under `prefix` that sort after `after`,
        in key order."""
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/",
                                                                   StartAfter=after)
        for page in pages:
            for folder in page.get("CommonPrefixes", []):
                yield str(folder["Prefix"])

    def objects(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """(key, size, last modified in epoch seconds) of every object under `prefix`."""
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for found in page.get("Contents", []):
                yield found["Key"], int(found["Size"]), found["LastModified"].timestamp()

    def multipart_uploads(self, prefix: str) -> Iterator[tuple[str, str, float]]:
        """(key, upload id, initiated in epoch seconds) of every open multipart upload under `prefix`."""
        for page in self._s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            for found in page.get("Uploads", []):
                yield found["Key"], found["UploadId"], found["Initiated"].timestamp()

    def start_multipart(self, key: str) -> str:
        return self._s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> None:
        with self._gone_is_missing(key):
            self._s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)

    def copy_part(self, key: str, upload_id: str, number: int, source: str) -> None:
        """Make a whole object of this bucket a part, inside S3: Lambda does not carry it."""
        with self._gone_is_missing(source):
            self._s3.upload_part_copy(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                      CopySource={"Bucket": self.bucket, "Key": source})

    def list_parts(self, key: str, upload_id: str) -> dict[int, tuple[str, int]]:
        """The parts S3 holds for a multipart upload: number -> (ETag, size). MissingObject once
        the upload is over (completed or aborted)."""
        parts: dict[int, tuple[str, int]] = {}
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "UploadId": upload_id}
        while True:
            with self._gone_is_missing(key):
                page = self._s3.list_parts(**kwargs)
            parts.update({p["PartNumber"]: (p["ETag"], p["Size"]) for p in page.get("Parts", [])})
            if not page.get("IsTruncated"):
                return parts
            kwargs["PartNumberMarker"] = page["NextPartNumberMarker"]

    def complete_multipart(self, key: str, upload_id: str, numbers: list[int]) -> None:
        """Complete with exactly these parts. ETags come from S3 (ListParts) rather than the
        upload record, which keeps that record small for uploads of thousands of parts."""
        listed = self.list_parts(key, upload_id)
        self.complete_parts(key, upload_id, {n: listed[n][0] for n in numbers})

    def complete_parts(self, key: str, upload_id: str, etags: dict[int, str]) -> str:
        """Complete with exactly these parts as they were (number -> ETag): S3 refuses a part
        replaced since (PartsRefused). Returns the object's ETag."""
        parts = [{"PartNumber": n, "ETag": etag} for n, etag in sorted(etags.items())]
        with self._gone_is_missing(key):
            try:
                answer = self._s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except self._s3.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") in _REFUSED_PARTS:
                    raise PartsRefused(key) from None
                raise
        return str(answer["ETag"])

    def abort_multipart(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(self._s3.exceptions.NoSuchUpload):
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def presigned_upload_part(self, key: str, upload_id: str, number: int) -> str:
        return self._s3.generate_presigned_url(
            "upload_part", Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": number},
            ExpiresIn=self.presign_seconds(),
        )

    def presigned_get(self, key: str) -> str:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.presign_seconds()
        )
