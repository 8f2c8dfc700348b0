"""A WSGI middleware in front of moto that records every request it serves: which service
and operation, whether it was signed by a registry (an Authorization header) or is a client
following a presigned URL, how many bytes it writes to S3, and when and for how long moto
served it.

Bytes written are the body of PutObject and UploadPart, and what CopyObject and
UploadPartCopy copy (the range, or the source object's size, looked up in moto before the
copy runs): a copy is a write S3 performs for the caller, and the reference registry copies
every blob once on commit.

Bytes carried are what a registry's own calls move between it and S3: the bodies it sends
(PutObject, UploadPart) and the objects it reads (GetObject). A copy carries nothing.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, unquote

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_COPY_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


@dataclass(frozen=True)
class TapRecord:
    service: str  # "s3", "dynamodb", ... (as botocore names them in events)
    operation: str  # "PutObject", "GetItem", ...
    presigned: bool  # a client following a presigned URL, not a registry's own call
    bytes_written: int  # S3 bytes this request writes
    bytes_carried: int = 0  # bytes a registry's own call sends to S3 or reads from it
    started: float = 0.0  # time.monotonic() when moto got it
    seconds: float = 0.0  # how long moto took to answer it (0 while it has not)

    @property
    def name(self) -> str:
        return f"{self.service}.{self.operation}"


def s3_operation(method: str, bucket: str, key: str, query: dict[str, list[str]], copy: bool) -> str:
    """The S3 API operation of a path-style request."""
    if not bucket:
        return "ListBuckets"
    if not key:
        bucket_ops = {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}
        if method in bucket_ops:
            return bucket_ops[method]
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        if "uploads" in query:
            return "ListMultipartUploads"
        if query.get("list-type") == ["2"]:
            return "ListObjectsV2"
        if "location" in query:
            return "GetBucketLocation"
        return "ListObjects"
    if method == "PUT":
        if "partNumber" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    if method == "GET":
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return method


def moto_object_size(bucket: str, key: str) -> int:
    """The size of an object in this process's moto (0 when it cannot be found)."""
    from moto.s3.models import s3_backends

    located = s3_backends.bucket_accounts.get(bucket)
    if located is None:
        return 0
    partition, account = located
    found = s3_backends[account][partition].get_bucket(bucket).keys.get(key)
    return int(getattr(found, "size", 0) or 0)


class RequestTap:
    """Wraps moto's WSGI application; `mark()` and `since()` window the records."""

    def __init__(self, app: WsgiApp, object_size: Callable[[str, str], int] = moto_object_size) -> None:
        self._app = app
        self._object_size = object_size
        self._lock = threading.Lock()
        self._records: list[TapRecord] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            record = self.classify(environ)
        except Exception:  # a request the tap does not understand must still reach moto
            record = TapRecord("unknown", environ.get("REQUEST_METHOD", "?"), False, 0)
        with self._lock:
            index = len(self._records)
            self._records.append(record)  # in arrival order, so a window holds what started in it
        read = 0

        def measured(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            nonlocal read
            if record.operation == "GetObject" and not record.presigned:
                read = int(dict((k.lower(), v) for k, v in headers).get("content-length", 0))
            return start_response(status, headers, *rest)

        started = time.monotonic()
        try:
            # moto builds its whole answer here (a body is bytes), so this is its time to serve.
            return self._app(environ, measured)
        finally:
            served = replace(record, started=started, seconds=time.monotonic() - started,
                             bytes_carried=record.bytes_carried + read)
            with self._lock:
                self._records[index] = served

    def classify(self, environ: dict[str, Any]) -> TapRecord:
        method = environ.get("REQUEST_METHOD", "GET")
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        presigned = "X-Amz-Signature" in query
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:  # JSON protocols: DynamoDB_20120810.GetItem
            prefix, _, operation = target.partition(".")
            service = "dynamodb" if prefix.startswith("DynamoDB") else prefix.lower()
            return TapRecord(service, operation, presigned, 0)
        scope = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        credential = query.get("X-Amz-Credential", [""])[0].split("/")
        service = scope.group(1) if scope else (credential[3] if len(credential) > 3 else "s3")
        if service != "s3":
            return TapRecord(service, method, presigned, 0)
        bucket, _, key = environ.get("PATH_INFO", "/").lstrip("/").partition("/")  # decoded by WSGI
        copy_source = environ.get("HTTP_X_AMZ_COPY_SOURCE")
        operation = s3_operation(method, bucket, key, query, copy_source is not None)
        written = self._written(operation, environ, copy_source)
        sent = written if operation in ("PutObject", "UploadPart") and not presigned else 0
        return TapRecord("s3", operation, presigned, written, sent)

    def _written(self, operation: str, environ: dict[str, Any], copy_source: str | None) -> int:
        if operation in ("PutObject", "UploadPart"):
            length = environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH") or environ.get("CONTENT_LENGTH") or 0
            return int(length)
        if operation in ("CopyObject", "UploadPartCopy") and copy_source:
            copy_range = _COPY_RANGE.fullmatch(environ.get("HTTP_X_AMZ_COPY_SOURCE_RANGE", ""))
            if copy_range:
                return int(copy_range.group(2)) - int(copy_range.group(1)) + 1
            source = unquote(copy_source.split("?")[0]).lstrip("/")
            bucket, _, key = source.partition("/")
            return self._object_size(bucket, key)
        return 0

    def mark(self) -> int:
        with self._lock:
            return len(self._records)

    def since(self, mark: int) -> list[TapRecord]:
        with self._lock:
            return self._records[mark:]


@dataclass(frozen=True)
class TapSummary:
    """What a window of records adds up to."""

    signed: Counter[str]  # registry calls by service.Operation
    presigned: Counter[str]  # client requests on presigned URLs by service.Operation
    written: Counter[str]  # S3 bytes written by service.Operation
    busy: dict[str, float]  # seconds moto spent serving each service.Operation (overlaps counted once)
    carried: int = 0  # bytes the registry's own calls moved to and from S3

    @property
    def s3_bytes_written(self) -> int:
        return sum(self.written.values())

    @classmethod
    def of(cls, records: Sequence[TapRecord]) -> TapSummary:
        written: Counter[str] = Counter()
        for record in records:
            if record.bytes_written:
                written[record.name] += record.bytes_written
        spans: dict[str, list[tuple[float, float]]] = {}
        for record in records:
            spans.setdefault(record.name, []).append((record.started, record.started + record.seconds))
        return cls(
            signed=Counter(r.name for r in records if not r.presigned),
            presigned=Counter(r.name for r in records if r.presigned),
            written=written,
            busy={name: covered(intervals) for name, intervals in sorted(spans.items())},
            carried=sum(r.bytes_carried for r in records),
        )


def covered(intervals: Iterable[tuple[float, float]]) -> float:
    """The length of the union of the intervals: requests served at once count once."""
    total, reached = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reached:
            total += end - max(start, reached)
            reached = end
    return total
