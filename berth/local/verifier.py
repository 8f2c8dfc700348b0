"""The local mode's stand-in for Lambda's SQS trigger: it polls the verify queue (which moto's
S3 feeds with object notifications, as the deployed bucket feeds SQS) and hands each message
to the real `verify_blob` handler, in an SQS event of the shape Lambda sends. The cache's copy
queue is polled the same way, for `copy_blob` (docs/cache.md)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from berth.local.apigateway import LambdaContext

log = logging.getLogger("berth_local.verifier")
HANDLER = "verify_blob"
VERIFY_TIMEOUT_MS = 900_000  # the verify (and copy) function's Lambda timeout


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m.get("MD5OfBody", ""),
        "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": "us-east-1",
    } for m in messages]}


def deliver(borrow: Callable[[], AbstractContextManager[Any]], sqs: Any, queue_url: str, wait_seconds: int = 0,
            handler: str = HANDLER) -> int:
    """Receive what the queue holds (one message at a time, like batch_size=1), run the
    handler on it in a borrowed app and delete it once handled. Returns how many were."""
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    handled = 0
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1,
                                       WaitTimeSeconds=wait_seconds).get("Messages", [])
        if not messages:
            return handled
        with borrow() as app:
            app.handler_map[handler](sqs_event(messages, arn), LambdaContext(VERIFY_TIMEOUT_MS))
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
        handled += 1


class VerifierPoller(threading.Thread):
    """Runs `deliver` until stopped. A failing message stays in the queue and comes back after
    its visibility timeout, as with Lambda."""

    def __init__(self, containers: Any, sqs: Any, queue_url: str, handler: str = HANDLER) -> None:
        super().__init__(name=f"berth-{handler}", daemon=True)
        self._containers = containers
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                deliver(self._containers.borrow, self._sqs, self._queue_url, wait_seconds=1, handler=self._handler)
            except Exception:
                log.exception("%s failed", self._handler)
                self._stop_event.wait(1)

    def stop(self) -> None:
        self._stop_event.set()
