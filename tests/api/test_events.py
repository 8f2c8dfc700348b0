"""Registry events (docs/events.md): pushes, tags, deletes and (opted in) pulls reach an
EventBridge bus, where a rule routes them; here to an SQS queue, all on moto."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.events import SOURCE
from chalicelib.registry import Registry
from chalicelib.storage.clients import AwsClients
from tests.conftest import ApiClient
from tests.helpers import digest_of, manifest_body

REPO = "team/app"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Sink:
    """A bus with a rule sending every registry event to a queue."""

    def __init__(self, aws: AwsClients) -> None:
        import boto3

        self.bus = f"registry-{uuid.uuid4().hex[:8]}"
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.queue = self.sqs.create_queue(QueueName=self.bus)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        aws.events.create_event_bus(Name=self.bus)
        aws.events.put_rule(Name="all", EventBusName=self.bus, EventPattern=json.dumps({"source": [SOURCE]}))
        aws.events.put_targets(Rule="all", EventBusName=self.bus, Targets=[{"Id": "queue", "Arn": arn}])

    def received(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in messages]


@pytest.fixture
def sink(aws: AwsClients) -> Sink:
    return Sink(aws)


def publishing(registry: Registry, aws: AwsClients, monkeypatch: pytest.MonkeyPatch, bus: str,
               actions: frozenset[str] = frozenset({"push", "tag", "delete"})) -> ApiClient:
    settings = replace(registry.settings, event_bus=bus, event_actions=actions)
    monkeypatch.setattr("app.registry", Registry.build(settings, aws))
    import app

    return ApiClient(app.app)


def push_image(client: ApiClient, reference: str) -> tuple[str, bytes]:
    for blob in (b"{}", b"layer"):
        assert client.post(f"/v2/{REPO}/blobs/uploads/?digest={digest_of(blob)}", body=blob).status == 201
    body = manifest_body(digest_of(b"{}"), [(digest_of(b"layer"), 5)])
    response = client.put(f"/v2/{REPO}/manifests/{reference}", body=body,
                          headers={"Content-Type": MANIFEST, "User-Agent": "docker/27.0"})
    assert response.status == 201, response.body
    return digest_of(body), body


def test_push_by_tag_is_a_manifest_push_and_a_tag(registry: Registry, aws: AwsClients, sink: Sink,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    client = publishing(registry, aws, monkeypatch, sink.bus)
    digest, body = push_image(client, "1.0")
    events = {e["detail-type"]: e for e in sink.received()}
    assert set(events) == {"Manifest Pushed", "Tag Pushed"}  # blob uploads are not events
    pushed = events["Manifest Pushed"]
    assert pushed["source"] == SOURCE
    detail = pushed["detail"]
    assert detail["action"] == "push" and detail["target"] == "manifest"
    assert detail["repository"] == REPO and detail["digest"] == digest and detail["tag"] == "1.0"
    assert detail["mediaType"] == MANIFEST and detail["size"] == len(body)
    assert "actor" not in detail  # auth is off: nobody in particular
    assert detail["request"]["userAgent"] == "docker/27.0"
    assert detail["request"]["method"] == "PUT" and detail["registry"]
    tag = events["Tag Pushed"]["detail"]
    assert (tag["action"], tag["target"], tag["tag"], tag["digest"]) == ("tag", "tag", "1.0", digest)


def test_deletes_and_pushes_by_digest(registry: Registry, aws: AwsClients, sink: Sink,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    client = publishing(registry, aws, monkeypatch, sink.bus)
    digest, _ = push_image(client, "1.0")
    push_image(client, digest)  # by digest: a push, no tag
    assert client.delete(f"/v2/{REPO}/manifests/1.0").status == 202
    assert client.delete(f"/v2/{REPO}/manifests/{digest}").status == 202
    assert client.delete(f"/v2/{REPO}/blobs/{digest_of(b'layer')}").status == 202
    kinds = [(e["detail-type"], e["detail"].get("tag"), e["detail"].get("digest")) for e in sink.received()]
    assert sorted(kinds, key=str) == sorted([
        ("Manifest Pushed", "1.0", digest), ("Tag Pushed", "1.0", digest), ("Manifest Pushed", None, digest),
        ("Tag Deleted", "1.0", None), ("Manifest Deleted", None, digest), ("Blob Deleted", None, digest_of(b"layer")),
    ], key=str)


def test_pulls_only_when_chosen_and_failures_send_nothing(registry: Registry, aws: AwsClients, sink: Sink,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    client = publishing(registry, aws, monkeypatch, sink.bus, frozenset({"pull"}))
    digest, body = push_image(client, "1.0")
    assert client.get(f"/v2/{REPO}/manifests/1.0", headers={"Accept": MANIFEST}).status == 200
    assert client.head(f"/v2/{REPO}/manifests/1.0", headers={"Accept": MANIFEST}).status == 200
    assert client.get(f"/v2/{REPO}/manifests/missing", headers={"Accept": MANIFEST}).status == 404
    (pulled,) = sink.received()
    assert pulled["detail-type"] == "Manifest Pulled"
    assert (pulled["detail"]["digest"], pulled["detail"]["tag"], pulled["detail"]["size"]) == (digest, "1.0", len(body))


def test_a_bus_that_refuses_never_fails_the_request(registry: Registry, aws: AwsClients,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    client = publishing(registry, aws, monkeypatch, "no-such-bus")
    push_image(client, "1.0")  # 201 all the same
    assert "registry events" in caplog.text


def test_without_a_bus_nothing_is_built(registry: Registry) -> None:
    assert registry.events is None


def test_a_misspelt_action_is_refused_at_start_up() -> None:
    from chalicelib.settings import Settings

    with pytest.raises(ValueError, match="BERTH_EVENTS"):
        Settings("b", "t", None, 60, event_actions=frozenset({"push", "pulls"}))
