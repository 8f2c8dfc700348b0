"""What moto cannot do safely, made safe: the local mode, the bench and the tests run moto
with `install()` called first, so that it answers as AWS would under any concurrency and
for as long as it runs (PLATFORM-NOTES, "moto").

- DynamoDB requests are atomic, as DynamoDB's are. moto has no locking: a conditional write
  reads, checks, then writes, and a transaction deep-copies every table it touches and puts
  the copy back when a condition fails, erasing what other requests committed meanwhile.
  Here one lock is held around every DynamoDB request, and a transaction checks all its
  conditions before it writes anything, so nothing it did is ever undone and no table is
  copied. A transaction sent again with the same ClientRequestToken within ten minutes (botocore
  fills one in, and its retry after a lost answer sends it again) succeeds without running a
  second time, as DynamoDB's does, where moto would run it again and fail its conditions.
- Memory follows what is stored. moto appends every model object it ever creates (each item
  written, each S3 object, each table copy) to a class-level list kept for its dashboard,
  so nothing deleted or overwritten is ever freed. That list is not kept.
- S3 answers `NoSuchUpload` (404) to UploadPart, UploadPartCopy, CompleteMultipartUpload and
  ListParts on a multipart upload that was completed or aborted, where moto fails with a
  KeyError (500) or, racing a completion, on a part it has already released.
- ListMultipartUploads says when each upload was initiated, where moto gives every upload one
  date in 2010: the purge aborts those no record names only once they are old enough that no
  request can still record them.
"""

from __future__ import annotations

import collections
import copy
import datetime
import functools
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

_installed = False
_DYNAMODB = threading.RLock()  # every DynamoDB request
_MULTIPART = threading.RLock()  # every S3 request that reads or changes a multipart upload's parts


def install() -> None:
    """Patch moto in this process (idempotent). Call before moto serves a request."""
    global _installed
    if _installed:
        return
    _stop_instance_tracking()
    _serialise_dynamodb()
    _answer_no_such_upload()
    _date_multipart_uploads()
    _installed = True


# ---- memory ------------------------------------------------------------------------------


def _stop_instance_tracking() -> None:
    from moto.core.common_models import BaseModel
    from moto.core.model_instances import reset_model_data

    def untracked(cls: Any, *args: Any, **kwargs: Any) -> Any:
        return super(BaseModel, cls).__new__(cls)

    BaseModel.__new__ = staticmethod(untracked)  # type: ignore[method-assign]
    reset_model_data()


# ---- DynamoDB ----------------------------------------------------------------------------


def _serialise_dynamodb() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    DynamoHandler.call_action = _holding(_DYNAMODB, DynamoHandler.call_action)  # type: ignore[method-assign]
    DynamoHandler.transact_write_items = _idempotent(DynamoHandler.transact_write_items)  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign, assignment]


def _holding(lock: Any, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def held(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return held


IDEMPOTENCY_SECONDS = 600  # how long DynamoDB remembers a transaction's ClientRequestToken
# token -> (the request's digest, when it ran, its answer), oldest first. A digest, not the
# request: a transaction carries up to 4 MB of items, which ten minutes of them must not keep.
_done: collections.OrderedDict[str, tuple[bytes, float, Any]] = collections.OrderedDict()


def _idempotent(method: Callable[..., Any]) -> Callable[..., Any]:
    """TransactWriteItems that answers a token it ran in the last ten minutes with that run's
    answer (the same request) or IdempotentParameterMismatchException (another one). Runs
    under the DynamoDB lock; only tokens of ten minutes are kept."""
    from moto.dynamodb.exceptions import DynamodbException

    @functools.wraps(method)
    def once(handler: Any) -> Any:
        token = handler.body.get("ClientRequestToken")
        now = time.monotonic()
        while _done and now - next(iter(_done.values()))[1] > IDEMPOTENCY_SECONDS:
            _done.popitem(last=False)
        request = hashlib.sha256(json.dumps(handler.body.get("TransactItems"), sort_keys=True,
                                            default=repr).encode()).digest()
        if token is not None and token in _done:
            if _done[token][0] != request:
                raise DynamodbException("com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
                                        "The request uses the same client token as a previous, but non-identical "
                                        "request.")
            return _done[token][2]
        answer = method(handler)
        if token is not None:
            _done[token] = (request, now, answer)
        return answer

    return once


def _transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's TransactWriteItems, checking every action first and writing only when all
    pass. Should a write still fail (an update expression that is invalid for the stored
    item), the items written before it are put back as they were: only those, never a copy
    of the table. Runs under the DynamoDB lock."""
    from moto.dynamodb.exceptions import (
        MockValidationException,
        TooManyTransactionsException,
        TransactionCanceledException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    actions = _actions(backend, transact_items)
    errors = [_condition_failure(backend, *action) for action in actions]
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    written: list[tuple[str, dict[str, Any], Any]] = []
    for index, (kind, op, table, key) in enumerate(actions):
        if kind == "ConditionCheck":
            continue
        written.append((table, key, copy.deepcopy(backend.get_item(table, key))))
        try:
            _write(backend, kind, op, table, key)
        except Exception as error:
            for table_name, item_key, before in reversed(written):
                _put_back(backend, table_name, item_key, before)
            if isinstance(error, MockValidationException):
                raise
            errors[index] = (type(error).__name__, str(error), None)
            raise TransactionCanceledException(errors) from None


Action = tuple[str, dict[str, Any], str, dict[str, Any]]  # kind, operation, table, key


def _actions(backend: Any, transact_items: list[dict[str, Any]]) -> list[Action]:
    """(kind, operation, table, key) of each action, refusing what moto refuses: more than one
    operation in an action, or two actions on one item."""
    from moto.dynamodb.exceptions import MultipleTransactionsException, TransactWriteSingleOpException

    actions = []
    seen: set[tuple[str, str]] = set()
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException()
        kind, op = next(iter(item.items()))
        if kind not in ("ConditionCheck", "Put", "Delete", "Update"):
            raise ValueError("Unsupported transaction operation")
        table = op["TableName"]
        if kind == "Put":
            schema = backend.get_table(table)
            names = [schema.hash_key_attr] + ([schema.range_key_attr] if schema.range_key_attr else [])
            key = {name: op["Item"][name] for name in names}
        else:
            key = op["Key"]
        identity = (str(table), str(dict(sorted(key.items()))))
        if identity in seen:
            raise MultipleTransactionsException()
        seen.add(identity)
        actions.append((kind, op, table, key))
    return actions


def _condition_failure(backend: Any, kind: str, op: dict[str, Any], table: str,
                       key: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """(code, message, item) as moto reports a cancellation reason; all None when it holds."""
    from moto.dynamodb.comparisons import get_filter_expression

    expression = op.get("ConditionExpression")
    if expression is None:
        return None, None, None
    current = backend.get_item(table, key)
    condition = get_filter_expression(expression, op.get("ExpressionAttributeNames"),
                                      op.get("ExpressionAttributeValues"))
    if condition.expr(current):
        return None, None, None
    wants_old = op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
    return "ConditionalCheckFailed", "The conditional request failed", \
        current.to_json()["Attributes"] if current and wants_old else None


def _write(backend: Any, kind: str, op: dict[str, Any], table: str, key: dict[str, Any]) -> None:
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    if kind == "Put":
        backend.put_item(table, op["Item"], expression_attribute_names=names, expression_attribute_values=values)
    elif kind == "Delete":
        backend.delete_item(table, key, expression_attribute_names=names, expression_attribute_values=values)
    else:
        backend.update_item(table, key, update_expression=op["UpdateExpression"],
                            expression_attribute_names=names, expression_attribute_values=values)


def _put_back(backend: Any, table: str, key: dict[str, Any], before: Any) -> None:
    if before is None:
        backend.delete_item(table, key)
    else:
        backend.put_item(table, before.to_json()["Attributes"])


# ---- S3 multipart uploads ----------------------------------------------------------------


def _answer_no_such_upload() -> None:
    from moto.s3.models import S3Backend

    for name in ("upload_part", "upload_part_copy", "complete_multipart_upload", "list_parts",
                 "abort_multipart_upload", "is_truncated"):
        setattr(S3Backend, name, _upload_must_exist(getattr(S3Backend, name)))


def _upload_must_exist(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run `method(backend, bucket_name, multipart_id, ...)` only while the upload exists, and
    alone among the multipart operations: a completion releases the parts it reads."""
    from moto.s3.exceptions import NoSuchUpload

    @functools.wraps(method)
    def guarded(backend: Any, bucket_name: str, multipart_id: str, *args: Any, **kwargs: Any) -> Any:
        with _MULTIPART:
            if multipart_id not in backend.get_bucket(bucket_name).multiparts:
                raise NoSuchUpload(upload_id=multipart_id)
            return method(backend, bucket_name, multipart_id, *args, **kwargs)

    return guarded


def _date_multipart_uploads() -> None:
    from moto.s3.models import FakeMultipart
    from moto.s3.responses import S3Response

    started = FakeMultipart.__init__

    def dated(upload: Any, *args: Any, **kwargs: Any) -> None:
        started(upload, *args, **kwargs)
        upload.initiated = datetime.datetime.now(datetime.UTC)

    FakeMultipart.__init__ = dated  # type: ignore[method-assign, assignment]
    S3Response.list_multipart_uploads = _dated_listing(S3Response.list_multipart_uploads)  # type: ignore[method-assign]


def _dated_listing(method: Callable[..., Any]) -> Callable[..., Any]:
    """moto's ListMultipartUploads answer (keys, ids, initiator, owner), each upload with the
    date it started in place of moto's one date for all."""

    @functools.wraps(method)
    def listing(response: Any) -> Any:
        serialize = response.serialized

        def dated(result: Any) -> Any:
            # Read after moto's own listing: an upload listed is here, unless it ended meanwhile.
            started = response.backend.list_multipart_uploads(response.bucket_name)
            for upload in result.result["Uploads"]:
                if upload["UploadId"] in started:
                    upload["Initiated"] = started[upload["UploadId"]].initiated.strftime("%Y-%m-%dT%H:%M:%S.000Z")
            return serialize(result)

        response.serialized = dated  # moto answers each request with an S3Response of its own
        try:
            return method(response)
        finally:
            del response.serialized  # an error (no such bucket) is answered as moto answers it

    return listing
