"""The Lambda handler in this process, each request through the API Gateway stand-in
(`berth.local.apigateway.invoke`, as the local mode and the tests send it), with the handler
call itself timed and the bodies that cross it counted. A request the stand-in answers itself
(too large, no route, refused by the authorizer) never reaches the handler and is not timed."""

from __future__ import annotations

import base64
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.awscalls import AwsCallCounter
from berth.local.apigateway import GatewayResponse, invoke

_KINDS = (
    (re.compile(r"^/v2/?$"), "/v2/"),
    (re.compile(r"^/v2/_catalog$"), "catalog"),
    (re.compile(r"/tags/list$"), "tags list"),
    (re.compile(r"/manifests/[^/]+$"), "manifest"),
    (re.compile(r"/blobs/uploads/?$"), "upload"),
    (re.compile(r"/blobs/uploads/[^/]+$"), "upload"),
    (re.compile(r"/blobs/[^/]+$"), "blob"),
)


def request_kind(method: str, target: str) -> str:
    """A short name for the kind of request: `PATCH upload`, `HEAD blob`, `POST mount`..."""
    path, _, query = target.partition("?")
    if method == "POST" and "mount=" in query:
        return "POST mount"
    if method == "PUT" and "digest=" in query:
        return "PUT upload ?digest="
    for pattern, kind in _KINDS:
        if pattern.search(path):
            return f"{method} {kind}"
    return f"{method} other"


@dataclass
class RequestCalls:
    """The AWS calls one kind of request made, summed over its requests."""

    requests: int = 0
    calls: Counter[str] = field(default_factory=Counter)


@dataclass
class Meter:
    """What the requests sent since the meter was reset cost the handler."""

    requests: int = 0
    handler_seconds: list[float] = field(default_factory=list)
    aws_seconds: list[float] = field(default_factory=list)  # of which waiting on AWS (moto here)
    bytes_in: int = 0  # request bodies handed to the handler
    bytes_out: int = 0  # response bodies it returned
    by_kind: dict[str, RequestCalls] = field(default_factory=dict)


def _result_body_size(result: dict[str, Any]) -> int:
    body = result.get("body") or ""
    return len(base64.b64decode(body)) if result.get("isBase64Encoded") else len(body.encode("utf-8"))


class _TimedApp:
    """Stands in for the Chalice app inside `invoke`: times the handler call, keeps its result."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self.seconds = 0.0
        self.result: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        result: dict[str, Any] = self._app(event, context)
        self.seconds = time.perf_counter() - started
        self.result = result
        return result


class InProcessLambda:
    def __init__(self, app: Any, counter: AwsCallCounter) -> None:
        self._app = app
        self._counter = counter
        self.meter = Meter()

    def reset(self) -> Meter:
        """Start a new meter; returns the finished one."""
        finished, self.meter = self.meter, Meter()
        return finished

    def request(self, method: str, target: str, headers: list[tuple[str, str]] | None = None,
                body: bytes = b"") -> GatewayResponse:
        pairs = list(headers or [])
        if body and not any(k.lower() == "content-type" for k, _ in pairs):
            pairs.append(("Content-Type", "application/octet-stream"))
        aws_before, calls_before = self._counter.seconds(), self._counter.calls()
        timed = _TimedApp(self._app)
        response = invoke(timed, method, target, pairs, body)
        if timed.result is None:
            return response  # answered by the gateway stand-in: the handler never ran
        meter = self.meter
        kind = meter.by_kind.setdefault(request_kind(method, target), RequestCalls())
        kind.requests += 1
        kind.calls.update(self._counter.calls() - calls_before)
        meter.requests += 1
        meter.handler_seconds.append(timed.seconds)
        meter.aws_seconds.append(self._counter.seconds() - aws_before)
        meter.bytes_in += len(body)
        meter.bytes_out += _result_body_size(timed.result)
        return response
