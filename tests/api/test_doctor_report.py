"""`POST /v2/_berth/doctor`: what the running registry reports about itself for `berth
doctor`, and who may ask. Through the API Gateway stand-in and the handler, on moto."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib import diagnostics
from chalicelib.registry import Registry
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.heartbeats import Heartbeats
from tests.api.auth_support import basic, bearer, token_for
from tests.api.test_events import Sink, publishing
from tests.conftest import ApiClient

PATH = "/v2/_berth/doctor"


def test_the_report_says_what_only_the_running_registry_knows(client: ApiClient) -> None:
    response = client.post(PATH)
    assert response.status == 200, response.body
    report: Any = response.json()
    assert report["runtime"]["resumable_sha256"] is True
    assert report["runtime"]["python"] and report["runtime"]["architecture"]
    assert report["presign"]["seconds_now"] <= report["presign"]["configured_seconds"]
    assert report["events"] == {"configured": False}
    assert report["schedules"] == {name: {"period": period, "ran": False}
                                   for name, period in diagnostics.SCHEDULED.items()}
    assert abs(report["now"] - time.time()) < 60


def test_scheduled_runs_are_reported_as_they_ended(client: ApiClient, registry: Registry, aws: AwsClients) -> None:
    heartbeats = Heartbeats(aws, registry.settings.table)
    with heartbeats.run("purge_uploads"):
        pass
    with pytest.raises(RuntimeError), heartbeats.run("collect_garbage"):
        raise RuntimeError("the collection broke")
    schedules = client.post(PATH).json()["schedules"]
    purge, collect = schedules["purge_uploads"], schedules["collect_garbage"]
    assert purge["ran"] and purge["finished"] >= purge["started"] and purge["failed"] is None
    assert collect["ran"] and collect["failed"] == "RuntimeError"
    heartbeats.started("purge_uploads", int(time.time()) + 5)  # a run that has not ended (yet)
    purge = client.post(PATH).json()["schedules"]["purge_uploads"]
    assert purge["started"] > purge["finished"]


def test_a_bus_that_takes_events_accepts_the_test_event(registry: Registry, aws: AwsClients,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    sink = Sink(aws)
    client = publishing(registry, aws, monkeypatch, sink.bus)
    assert client.post(PATH).json()["events"] == {"configured": True, "accepted": True, "error": None}
    (event,) = sink.received()
    assert event["detail-type"] == "Registry Checked" and event["detail"]["action"] == "check"


def test_a_bus_that_does_not_exist_is_reported_with_its_error_code(registry: Registry, aws: AwsClients,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    client = publishing(registry, aws, monkeypatch, "no-such-bus")
    events = client.post(PATH).json()["events"]
    assert events["configured"] is True and events["accepted"] is False and events["error"]


def test_only_post_answers(client: ApiClient) -> None:
    response = client.get(PATH)
    assert response.status == 405 and response.json()["errors"][0]["code"] == "UNSUPPORTED"


@pytest.mark.parametrize("auth_registry", ["token", "basic"], indirect=True)
def test_known_users_may_ask_and_nobody_else(api: ApiClient, auth_registry: Registry) -> None:
    """As for the catalog: anonymous callers are challenged, a known user is answered."""
    refused = api.post(PATH)
    assert refused.status == 401 and refused.header("WWW-Authenticate")
    assert api.post(PATH, headers=basic("bob")).status == 200
    assert api.post(PATH, headers=basic("bob", "wrong")).status == 401
    if auth_registry.settings.auth_mode == "token":
        assert api.post(PATH, headers=bearer(token_for(api, ["registry:catalog:*"], "bob"))).status == 200
        # A token for a repository alone does not open it: the gateway's policy lacks the path.
        only_repo = bearer(token_for(api, ["repository:team/app:pull"], "bob"))
        assert api.post(PATH, headers=only_repo).status == 401
