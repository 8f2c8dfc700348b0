"""Attack on manifest bodies in S3 with faults at every call (tests/api/test_faults.py's
machinery): the paths its operations do not take. A push refused by its transaction (a layer
not in the repository, MANIFEST_BLOB_UNKNOWN) writes its body and must delete it whatever
fails; a push of an index with its body in S3 must keep it whatever fails. After the client's
retry (or giving up) and the scheduled jobs, the audit finds nothing broken and nothing left."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.storage.clients import AwsClients
from tests.api.faults import MODES, Injector
from tests.api.test_faults import CONFIG, REPO, Operation, World, _faults_in, _image_prepare
from tests.helpers import digest_of, manifest_body

INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture
def injector() -> Iterator[Injector]:
    injector = Injector()
    yield injector
    injector.detach()


def _refused_prepare(world: World) -> dict[str, Any]:
    world.push_blob(CONFIG)
    return {"body": manifest_body(digest_of(CONFIG), [(digest_of(b"never pushed"), 12)])}


def _refused_act(world: World, state: dict[str, Any]) -> None:
    world.put_manifest("1", state["body"])


def _refused_retry(world: World, state: dict[str, Any]) -> None:
    answer = world.put_manifest("1", state["body"])
    assert answer.status == 400 and answer.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN", answer.body
    assert world.client.get(f"/v2/{REPO}/manifests/1").status == 404


def _index_prepare(world: World) -> dict[str, Any]:
    image = _image_prepare(world)["body"]
    assert world.put_manifest(digest_of(image), image).status == 201
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest_of(image),
         "size": len(image)}]}).encode()
    return {"image": image, "body": index}


def _put_index(world: World, state: dict[str, Any]) -> Any:
    return world.client.put(f"/v2/{REPO}/manifests/multi", body=state["body"], headers={"Content-Type": INDEX})


def _index_retry(world: World, state: dict[str, Any]) -> None:
    answer = _put_index(world, state)
    assert answer.status == 201, answer.body


def _index_settle(world: World, state: dict[str, Any]) -> None:
    for reference in ("multi", digest_of(state["body"])):
        answer = world.client.get(f"/v2/{REPO}/manifests/{reference}", headers={"Accept": INDEX})
        assert answer.status == 200 and answer.body == state["body"], (answer.status, answer.body[:200])
    world.pulls_exactly(digest_of(state["image"]), state["image"])


OPERATIONS = {
    "manifest-put refused, body in S3": Operation(_refused_prepare, _refused_act, _refused_retry, bodies_in_s3=True),
    "index-put, body in S3": Operation(_index_prepare, lambda world, state: _put_index(world, state) and None,
                                       _index_retry, _index_settle, bodies_in_s3=True),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(OPERATIONS))
def test_a_fault_at_any_call_loses_nothing_and_leaves_nothing(name: str, mode: str, aws: AwsClients,
                                                              injector: Injector,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    found = _faults_in(OPERATIONS[name], mode, aws, injector, monkeypatch)
    assert "s3.PutObject" in found.calls, found.calls  # the body went to S3
    assert not found.broken, "\n".join(found.broken)
    assert not found.leaked, "\n".join(found.leaked)
