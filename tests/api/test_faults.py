"""Faults at every step: each AWS call of an operation, driven through the handler, fails in
turn (tests/api/faults.py: before the call, or after it took effect with its answer lost, or
retried by botocore after that). Then the client retries as a careful client would, or gives
up; the purge and the collector run as scheduled later on; and the audit
(chalicelib/lifecycle/audit.py) must find nothing, while what the registry acknowledged
still pulls back byte for byte.

S3's 5 MiB minimum part size is scaled down to 5 KiB, in moto and in the registry alike: the
calls an upload makes are the same, and the hundreds of runs take seconds instead of minutes."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from berth.local.provision import provision, provision_verify_queue
from berth.local.verifier import deliver
from chalicelib.lifecycle.audit import Audit
from chalicelib.lifecycle.consistency import ORPHAN_MULTIPART, ORPHAN_OBJECT, Finding
from chalicelib.lifecycle.jobs import Housekeeping, never
from chalicelib.lifecycle.policy import HOUR
from chalicelib.manifests.service import INLINE_LIMIT
from chalicelib.registry import Registry
from chalicelib.settings import Settings
from chalicelib.storage.clients import AwsClients
from tests.api.faults import MODES, FaultyAws, Injector
from tests.conftest import REGION, ApiClient
from tests.helpers import digest_of, fetch_blob, manifest_body

REPO = "team/app"
LATER = 30 * 24 * HOUR  # the jobs run as if this much later: every grace period and upload age has passed
CONFIG = b'{"architecture":"amd64"}'


KiB = 1024
PART_MIN = 5 * KiB


@pytest.fixture
def injector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Injector]:
    monkeypatch.setattr("chalicelib.uploads.state.PART_MIN", PART_MIN)
    monkeypatch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", PART_MIN)
    injector = Injector()
    yield injector
    injector.detach()


class World:
    """A registry of its own (table, bucket, verify queue) on clients that can fail, the
    handler in front of it, and the jobs and the audit as they would run a month later."""

    def __init__(self, aws: AwsClients, injector: Injector, monkeypatch: pytest.MonkeyPatch, direct: bool) -> None:
        import app as app_module

        name = f"fault-{uuid.uuid4().hex[:12]}"
        self.aws, self.name = aws, name
        provision(aws.s3, aws.dynamodb, name, name)
        queue_url = provision_verify_queue(aws.s3, aws.sqs, name, name) if direct else None
        settings = Settings(bucket=name, table=name, region=REGION, presign_seconds=300, verify_queue=name,
                            verify_queue_url=queue_url)
        clients = FaultyAws(aws, injector)
        self.registry = Registry.build(settings, clients)
        monkeypatch.setattr(app_module, "registry", self.registry)
        self.client = ApiClient(app_module.app)
        self._app = app_module.app
        self.hours = 0.0
        self.jobs = Housekeeping.build(settings, clients, self.clock)
        self.audit = Audit.build(settings, clients, self.clock)

    def clock(self) -> float:
        return time.time() + LATER + self.hours * HOUR

    def verify(self) -> None:
        """S3 told the queue of completed direct uploads; the verify Lambda takes them."""
        if self.registry.settings.verify_queue_url:
            deliver(lambda: contextlib.nullcontext(self._app), self.aws.sqs, self.registry.settings.verify_queue_url)

    def scheduled_jobs(self) -> None:
        """The verifier, then the purge and a collection, an hour after the last ones."""
        self.hours += 1
        self.verify()
        self.jobs.purge(never)
        self.jobs.collector().run(never)

    def drop(self) -> None:
        s3 = self.aws.s3
        for upload in s3.list_multipart_uploads(Bucket=self.name).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"])
        keys = [{"Key": o["Key"]} for o in s3.list_objects_v2(Bucket=self.name).get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=self.name, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=self.name)
        self.aws.dynamodb.delete_table(TableName=self.name)
        if self.registry.settings.verify_queue_url:
            self.aws.sqs.delete_queue(QueueUrl=self.registry.settings.verify_queue_url)

    # ---- what clients do ----------------------------------------------------------------

    def push_blob(self, data: bytes) -> None:
        assert self.client.post(f"/v2/{REPO}/blobs/uploads/?digest={digest_of(data)}", body=data).status == 201

    def push_image(self, layers: list[bytes], *tags: str) -> bytes:
        for blob in (CONFIG, *layers):
            self.push_blob(blob)
        body = manifest_body(digest_of(CONFIG), [(digest_of(layer), len(layer)) for layer in layers])
        for reference in tags or (digest_of(body),):
            assert self.put_manifest(reference, body).status == 201
        return body

    def put_manifest(self, reference: str, body: bytes) -> Any:
        return self.client.put(f"/v2/{REPO}/manifests/{reference}", body=body,
                               headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})

    def keep(self, data: bytes) -> bytes:
        """A manifest naming the blob, so that collections keep it."""
        body = manifest_body(digest_of(CONFIG), [(digest_of(data), len(data))])
        self.push_blob(CONFIG)
        assert self.put_manifest("kept", body).status == 201
        return body

    def pulls_exactly(self, reference: str, body: bytes) -> None:
        response = self.client.get(f"/v2/{REPO}/manifests/{reference}")
        assert response.status == 200 and response.body == body, (response.status, response.body[:200])
        for descriptor in [json.loads(body)["config"], *json.loads(body)["layers"]]:
            assert digest_of(fetch_blob(self.client, REPO, descriptor["digest"])) == descriptor["digest"]


def chunked_upload(world: World, state: dict[str, Any], chunk: int) -> bool:
    """POST (unless `state` holds the upload's Location), then PATCHes from where the upload
    stands; False at the first answer that is not the expected one."""
    if "location" not in state:
        started = world.client.post(f"/v2/{REPO}/blobs/uploads/")
        if started.status != 202:
            return False
        state["location"] = started.header("Location")
    standing = world.client.get(state["location"])
    if standing.status != 204:
        return False
    data = state["data"]
    offset = int(standing.header("Range").split("-")[1]) + 1 if standing.header("Range") != "0-0" else 0
    for start in range(offset, len(data), chunk):
        piece = data[start : start + chunk]
        answer = world.client.patch(state["location"], body=piece,
                                    headers={"Content-Range": f"{start}-{start + len(piece) - 1}"})
        if answer.status != 202:
            return False
    return True


def push_until_done(world: World, state: dict[str, Any], chunk: int) -> None:
    """A careful chunked client after a failure: ask where its upload stands, send the rest
    and finish. An upload the registry acknowledged must take it to the end; one it no longer
    knows must have been finished (a finish whose answer was lost). With no upload at all
    (its POST failed), start one."""
    digest = digest_of(state["data"])
    if "location" in state and world.client.get(state["location"]).status == 404:
        assert world.client.head(f"/v2/{REPO}/blobs/{digest}").status == 200, "an acknowledged upload was lost"
        return
    assert chunked_upload(world, state, chunk), "an acknowledged upload could not go on"
    finished = world.client.put(f"{state['location']}?digest={digest}")
    assert finished.status == 201, f"an acknowledged upload could not finish: {finished.status} {finished.body!r}"


@dataclass
class Operation:
    """What one test drives: `act` is faulted; the client then retries (`retry`, which asserts
    what it must then see) or gives up; after the scheduled jobs, `settle` checks what the
    registry acknowledged still holds."""

    prepare: Callable[[World], dict[str, Any]]
    act: Callable[[World, dict[str, Any]], None]
    retry: Callable[[World, dict[str, Any]], None]
    settle: Callable[[World, dict[str, Any]], None] = lambda world, state: None
    gives_up: bool = True  # whether giving up is a path of its own
    direct: bool = False  # whether it needs the verify queue
    bodies_in_s3: bool = False  # whether manifest bodies go to S3 (as those over the inline limit do)


CHUNK = 4 * KiB
CHUNKED = bytes(range(256)) * (2 * CHUNK // 256) + b"tail"  # in chunks: a piece, a part holding one back, a piece


def _chunked_prepare(world: World) -> dict[str, Any]:
    return {"data": CHUNKED}


def _chunked_act(world: World, state: dict[str, Any]) -> None:
    chunked_upload(world, state, CHUNK)


def _uploaded_retry(world: World, state: dict[str, Any]) -> None:
    push_until_done(world, state, CHUNK)
    state["kept"] = world.keep(state["data"])


def _kept_settle(world: World, state: dict[str, Any]) -> None:
    world.pulls_exactly("kept", state["kept"])


def _finish_prepare(world: World) -> dict[str, Any]:
    state = {"data": CHUNKED[: 2 * CHUNK]}
    assert chunked_upload(world, state, CHUNK)  # a part, and a piece copied in at the end
    return state


def _finish_act(world: World, state: dict[str, Any]) -> None:
    world.client.put(f"{state['location']}?digest={digest_of(state['data'])}")


DIRECT = bytes(range(256)) * 8 + b"direct"


def _direct_prepare(world: World) -> dict[str, Any]:
    started = world.client.post(f"/v2/{REPO}/blobs/uploads/?berth-direct={len(DIRECT)}")
    assert started.status == 202, started.body
    location = started.header("Location")
    for entry in world.client.get(f"{location}/parts").json()["urls"]:
        assert requests.put(entry["url"], data=DIRECT, timeout=60).status_code == 200
    return {"data": DIRECT, "location": location}


def _direct_retry(world: World, state: dict[str, Any]) -> None:
    digest = digest_of(state["data"])
    finished = world.client.put(f"{state['location']}?digest={digest}")
    if finished.status not in (201, 202):
        # The upload is gone or broken: a client starts it again.
        state.update(_direct_prepare(world))
        assert world.client.put(f"{state['location']}?digest={digest}").status in (201, 202)
    world.verify()
    assert world.client.head(f"/v2/{REPO}/blobs/{digest}").status == 200
    state["kept"] = world.keep(state["data"])


def _cancel_act(world: World, state: dict[str, Any]) -> None:
    world.client.delete(state["location"])


def _cancel_retry(world: World, state: dict[str, Any]) -> None:
    assert world.client.delete(state["location"]).status in (204, 404)
    assert world.client.get(state["location"]).status == 404


def _image_prepare(world: World) -> dict[str, Any]:
    layers = [b"layer one " * 100, b"layer two " * 100]
    for blob in (CONFIG, *layers):
        world.push_blob(blob)
    return {"body": manifest_body(digest_of(CONFIG), [(digest_of(layer), len(layer)) for layer in layers])}


def _manifest_put_act(world: World, state: dict[str, Any]) -> None:
    world.put_manifest("1", state["body"])


def _manifest_put_retry(world: World, state: dict[str, Any]) -> None:
    answer = world.put_manifest("1", state["body"])
    assert answer.status == 201, answer.body


def _manifest_put_settle(world: World, state: dict[str, Any]) -> None:
    world.pulls_exactly("1", state["body"])
    world.pulls_exactly(digest_of(state["body"]), state["body"])


def _tagged_prepare(world: World) -> dict[str, Any]:
    kept = world.push_image([b"kept layer " * 50], "kept")
    body = world.push_image([b"layer one " * 100, b"layer two " * 100], "1", "2")
    return {"body": body, "kept": kept}


def _manifest_delete_act(world: World, state: dict[str, Any]) -> None:
    world.client.delete(f"/v2/{REPO}/manifests/{digest_of(state['body'])}")


def _manifest_delete_retry(world: World, state: dict[str, Any]) -> None:
    digest = digest_of(state["body"])
    assert world.client.delete(f"/v2/{REPO}/manifests/{digest}").status in (202, 404)
    for reference in (digest, "1", "2"):
        assert world.client.get(f"/v2/{REPO}/manifests/{reference}").status == 404, reference


def _tag_delete_act(world: World, state: dict[str, Any]) -> None:
    world.client.delete(f"/v2/{REPO}/manifests/2")


def _tag_delete_retry(world: World, state: dict[str, Any]) -> None:
    assert world.client.delete(f"/v2/{REPO}/manifests/2").status in (202, 404)
    assert world.client.get(f"/v2/{REPO}/manifests/2").status == 404


def _tag_delete_settle(world: World, state: dict[str, Any]) -> None:
    world.pulls_exactly("1", state["body"])
    world.pulls_exactly("kept", state["kept"])


def _kept_image_settle(world: World, state: dict[str, Any]) -> None:
    world.pulls_exactly("kept", state["kept"])


def _collection_prepare(world: World) -> dict[str, Any]:
    state = _tagged_prepare(world)
    assert world.client.delete(f"/v2/{REPO}/manifests/{digest_of(state['body'])}").status == 202
    world.push_blob(b"pushed, never used")
    return state


def _collection_act(world: World, state: dict[str, Any]) -> None:
    with contextlib.suppress(Exception):  # the Lambda failed; the next scheduled run carries on
        world.jobs.collector().run(never)


OPERATIONS = {
    "chunked-upload": Operation(_chunked_prepare, _chunked_act, _uploaded_retry, _kept_settle),
    "finish": Operation(_finish_prepare, _finish_act, _uploaded_retry, _kept_settle),
    "cancel": Operation(_finish_prepare, _cancel_act, _cancel_retry),
    "direct-finish": Operation(_direct_prepare, _finish_act, _direct_retry, _kept_settle, direct=True),
    "manifest-put": Operation(_image_prepare, _manifest_put_act, _manifest_put_retry, _manifest_put_settle),
    "manifest-delete": Operation(_tagged_prepare, _manifest_delete_act, _manifest_delete_retry, _kept_image_settle),
    "manifest-put, body in S3": Operation(_image_prepare, _manifest_put_act, _manifest_put_retry,
                                          _manifest_put_settle, bodies_in_s3=True),
    "manifest-delete, body in S3": Operation(_tagged_prepare, _manifest_delete_act, _manifest_delete_retry,
                                             _kept_image_settle, bodies_in_s3=True),
    "tag-delete": Operation(_tagged_prepare, _tag_delete_act, _tag_delete_retry, _tag_delete_settle),
    # The collector's retry is the next scheduled run.
    "collection": Operation(_collection_prepare, _collection_act, lambda world, state: None, _kept_image_settle,
                            gives_up=False),
}


@dataclass(frozen=True)
class Outcome:
    calls: list[str]  # the calls the operation makes when nothing fails
    broken: list[str]  # lost or inconsistent: what the client saw, or the audit's other findings
    leaked: list[str]  # S3 objects and multipart uploads no record names


ORPHANS = (ORPHAN_OBJECT, ORPHAN_MULTIPART)
_outcomes: dict[tuple[str, str], Outcome] = {}


def outcome(name: str, mode: str, aws: AwsClients, injector: Injector, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    """Every call of the operation failed in turn, on each path (once per session: both tests
    below judge the same runs)."""
    if (name, mode) not in _outcomes:
        _outcomes[name, mode] = _faults_in(OPERATIONS[name], mode, aws, injector, monkeypatch)
    return _outcomes[name, mode]


def _faults_in(operation: Operation, mode: str, aws: AwsClients, injector: Injector,
               monkeypatch: pytest.MonkeyPatch) -> Outcome:
    def play(at: int, path: str) -> list[Finding]:
        world, made = World(aws, injector, monkeypatch, operation.direct), []
        monkeypatch.setattr("chalicelib.manifests.service.INLINE_LIMIT", 0 if operation.bodies_in_s3 else INLINE_LIMIT)
        try:
            state = operation.prepare(world)
            with injector.armed_at(at, mode) as made:
                operation.act(world, state)
            if path == "retry":
                operation.retry(world, state)
            world.scheduled_jobs()
            if path == "retry":
                operation.settle(world, state)
            problems = world.audit.run().findings
        except AssertionError as failed:
            problems = [Finding("assertion", path, f"{failed}".splitlines()[0])]
        finally:
            world.drop()
        calls.extend(made if at == 0 else [])
        return problems

    calls: list[str] = []
    assert play(0, "retry") == []
    broken, leaked = [], []
    for at in range(1, len(calls) + 1):
        for path in ("retry", "give up") if operation.gives_up else ("retry",):
            for problem in play(at, path):
                line = f"call {at} ({calls[at - 1]}), {path}: {problem.kind} {problem.subject}: {problem.detail}"
                (leaked if problem.kind in ORPHANS else broken).append(line)
    return Outcome(calls, broken, leaked)


CASES = [(name, mode) for name in OPERATIONS for mode in MODES]


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_a_fault_at_any_call_loses_nothing(name: str, mode: str, aws: AwsClients, injector: Injector,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """What the client was told holds after its retry; the audit finds every record sound."""
    found = outcome(name, mode, aws, injector, monkeypatch)
    assert found.calls, "the operation made no AWS call"
    assert not found.broken, "\n".join(found.broken)


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_a_fault_at_any_call_leaves_nothing_behind(name: str, mode: str, aws: AwsClients, injector: Injector,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is left in S3 that no record names, once the purge and the collector ran."""
    found = outcome(name, mode, aws, injector, monkeypatch)
    assert not found.leaked, "\n".join(found.leaked)



def _started_settle(world: World, answer: Any) -> None:
    assert world.client.get(answer.header("Location")).status == 204


def _tag_deleted_settle(world: World, answer: Any) -> None:
    assert world.client.get(f"/v2/{REPO}/manifests/2").status == 404
    assert world.client.get(f"/v2/{REPO}/manifests/1").status == 200


# prepare, the request, the call botocore sends twice, the answer due, what then holds
RETRIED = {
    "start an upload": (lambda world: {}, lambda world, state: world.client.post(f"/v2/{REPO}/blobs/uploads/"),
                        "dynamodb.PutItem", 202, _started_settle),
    "delete a tag": (_tagged_prepare, lambda world, state: world.client.delete(f"/v2/{REPO}/manifests/2"),
                     "dynamodb.TransactWriteItems", 202, _tag_deleted_settle),
}


@pytest.mark.parametrize("request_name", list(RETRIED))
def test_a_write_botocore_sent_again_gets_the_answer_its_first_attempt_earned(
        request_name: str, aws: AwsClients, injector: Injector, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first attempt took effect and its answer was lost; the retry must not turn that
    success into an error (a 500 for a started upload, a 404 for a deleted tag)."""
    prepare, act, call, status, settle = RETRIED[request_name]

    def run(at: int) -> list[str]:
        world = World(aws, injector, monkeypatch, direct=False)
        try:
            state = prepare(world)
            with injector.armed_at(at, "retried") as made:
                answer = act(world, state)
            assert answer.status == status, (made, answer.body)
            settle(world, answer)
            return list(made)
        finally:
            world.drop()

    run(run(0).index(call) + 1)
