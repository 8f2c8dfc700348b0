"""One JSON log line and a few CloudWatch metrics (EMF) per request, through Powertools.

Logged: request id, method, repository, operation, status, OCI error code, caller, bytes in
— never headers, bodies or credentials. Metrics (namespace from POWERTOOLS_METRICS_NAMESPACE,
default Berth): Requests, Pulls (manifest GETs), Pushes (manifest PUTs), BytesUploaded,
Chunks (PATCH bodies), and Errors by code. Tracer is not used: it costs ~500 ms of cold start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

NAMESPACE = "Berth"


@dataclass(frozen=True)
class RequestRecord:
    request_id: str
    method: str
    operation: str  # e.g. "manifests.get"; "" when no route matched
    repository: str | None
    status: int
    error_code: str | None
    principal: str
    bytes_in: int


class Telemetry:
    def __init__(self) -> None:
        # Not "berth": that is Chalice's own logger (the app name), with a plain-text handler.
        service = os.environ.get("POWERTOOLS_SERVICE_NAME", "berth-api")
        self.namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE)
        self.logger = Logger(service=service)
        self.metrics = Metrics(namespace=self.namespace, service=service)

    def record(self, request: RequestRecord) -> None:
        fields: dict[str, Any] = {k: v for k, v in request.__dict__.items() if v not in (None, "")}
        if request.status >= 500:
            self.logger.error("request", extra=fields)
        else:
            self.logger.info("request", extra=fields)
        self._count("Requests")
        if request.operation == "manifests.get":
            self._count("Pulls")
        elif request.operation == "manifests.put" and request.status == 201:
            self._count("Pushes")
        if request.operation == "uploads.patch":
            self._count("Chunks")
        if request.bytes_in:
            self.metrics.add_metric(name="BytesUploaded", unit=MetricUnit.Bytes, value=request.bytes_in)
        if request.error_code and not is_metrics_disabled():
            # Its own EMF record, so the Code dimension applies to this metric only (single_metric
            # prints even when metrics are disabled, hence the check).
            with single_metric(name="Errors", unit=MetricUnit.Count, value=1, namespace=self.namespace) as metric:
                metric.add_dimension(name="Code", value=request.error_code)

    def _count(self, name: str) -> None:
        self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)

    def flush(self) -> None:
        self.metrics.flush_metrics()
        # Disabled, Powertools keeps the set (shared by every Metrics) and it would only grow.
        self.metrics.clear_metrics()
