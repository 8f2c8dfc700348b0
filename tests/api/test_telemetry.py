"""Every request leaves one structured log record and EMF metrics (CloudWatch reads both
from stdout), and none of it carries a secret."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from chalicelib.telemetry import Telemetry
from tests.helpers import digest_of

SECRET = "Basic c2VjcmV0OnNlY3JldA=="


@pytest.fixture
def telemetry(client: Any, monkeypatch: pytest.MonkeyPatch) -> Telemetry:
    import app as app_module

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "BerthTest")
    # Powertools configures one logger per service name, once: a fresh name gets this level.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", f"berth-test-{uuid.uuid4().hex}")
    fresh = Telemetry()
    monkeypatch.setattr(app_module, "telemetry", fresh)
    return fresh


def test_a_request_is_logged_and_counted(client: Any, telemetry: Telemetry, caplog: pytest.LogCaptureFixture,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    blob = b"layer bytes"
    with caplog.at_level("INFO"):
        client.post(f"/v2/team/app/blobs/uploads/?digest={digest_of(blob)}", body=blob,
                    headers={"Authorization": SECRET})
        client.get("/v2/team/app/manifests/missing")
    logs = [r.__dict__ for r in caplog.records if r.name == telemetry.logger.name and r.getMessage() == "request"]
    assert [(r["operation"], r["status"]) for r in logs] == [("uploads.start", 201), ("manifests.get", 404)]
    assert logs[0]["repository"] == "team/app" and logs[0]["bytes_in"] == len(blob) and logs[0]["request_id"]
    assert logs[1]["error_code"] == "MANIFEST_UNKNOWN"
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert {m["_aws"]["CloudWatchMetrics"][0]["Namespace"] for m in metrics} == {"BerthTest"}
    assert any(m.get("BytesUploaded") == [float(len(blob))] for m in metrics), metrics
    assert any(m.get("Code") == "MANIFEST_UNKNOWN" and "Errors" in m for m in metrics)
    assert sum("Pulls" in m for m in metrics) == 1 and sum("Requests" in m for m in metrics) == 2
    assert SECRET.split()[1] not in caplog.text + json.dumps(metrics)


def test_disabled_metrics_print_nothing_and_keep_nothing(client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import app as app_module

    for _ in range(3):
        client.get("/v2/team/app/manifests/missing")
    assert '"_aws"' not in capsys.readouterr().out
    assert app_module.telemetry.metrics.metric_set == {}
