"""Failures injected at one AWS call of an operation, for tests/api/test_faults.py.

The registry's boto3 clients (an AwsClients) get hooks in botocore's event system, so every
call counts, paginators' included, and the Nth call of an armed operation fails in one of
three ways:

- `before`: the call never reaches AWS (a refused connection, retries spent): nothing happened.
- `after`: the call took effect, then its answer was lost (a read timeout, retries spent).
- `retried`: the call took effect, its answer was lost, and botocore sent it again, as its
  standard retry mode does after a timeout: the code sees the second answer. A retried
  TransactWriteItems carries the same idempotency token (botocore fills ClientRequestToken),
  so DynamoDB answers it with the first attempt's success instead of running it again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from chalicelib.storage.clients import AwsClients

MODES = ("before", "after", "retried")
_INJECTED = "http://injected.invalid"


class Injector:
    def __init__(self) -> None:
        self.armed = False
        self.at = 0
        self.mode = ""
        self.calls: list[str] = []  # `service.Operation` of each call counted since armed
        self._replaying = False
        self._attached: list[Any] = []

    def attach(self, client: Any) -> None:
        if any(client is seen for seen in self._attached):
            return
        events = client.meta.events
        events.register("provide-client-params.*.*", self._keep_params, unique_id=f"fault-params-{id(self)}")
        events.register("before-call.*.*", lambda **kw: self._before(client, **kw),
                        unique_id=f"fault-before-{id(self)}")
        events.register("after-call.*.*", self._after, unique_id=f"fault-after-{id(self)}")
        self._attached.append(client)

    def detach(self) -> None:
        for client in self._attached:
            for event, name in (("provide-client-params.*.*", "params"), ("before-call.*.*", "before"),
                                ("after-call.*.*", "after")):
                client.meta.events.unregister(event, unique_id=f"fault-{name}-{id(self)}")
        self._attached.clear()

    @contextmanager
    def armed_at(self, at: int, mode: str) -> Iterator[list[str]]:
        """Count the calls made inside (the list yielded), failing the `at`-th (1-based; 0: none)."""
        self.armed, self.at, self.mode, self.calls = True, at, mode, []
        try:
            yield self.calls
        finally:
            self.armed = False

    def _keep_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if self.armed and not self._replaying:
            context["fault-params"] = dict(params)

    def _before(self, client: Any, model: Any, context: dict[str, Any], **_: Any) -> Any:
        if not self.armed or self._replaying:
            return None
        self.calls.append(f"{model.service_model.service_name}.{model.name}")
        if len(self.calls) != self.at:
            return None
        if self.mode == "before":
            raise EndpointConnectionError(endpoint_url=_INJECTED)
        if self.mode == "after":
            context["fault-lose-answer"] = True
            return None
        # retried: the attempt whose answer is lost, then (returning None) botocore's retry.
        self._replaying = True
        try:
            client._make_api_call(model.name, context["fault-params"])
            succeeded = True
        except Exception:
            succeeded = False
        finally:
            self._replaying = False
        if model.name == "TransactWriteItems" and succeeded:
            return AWSResponse(_INJECTED, 200, {}, None), {"ResponseMetadata": {"HTTPStatusCode": 200}}
        return None

    def _after(self, context: dict[str, Any], **_: Any) -> None:
        if context.pop("fault-lose-answer", False):
            raise ReadTimeoutError(endpoint_url=_INJECTED)


class FaultyAws(AwsClients):
    """The session's clients, with the injector's hooks."""

    def __init__(self, base: AwsClients, injector: Injector) -> None:
        super().__init__()
        self._base = base
        self._injector = injector

    def _client(self, service: str) -> Any:
        client = getattr(self._base, service)
        self._injector.attach(client)
        return client
