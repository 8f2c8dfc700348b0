"""Attack on the grants for manifest bodies in S3 (docs/lifecycle.md, "Manifest bodies in S3"):
the scheduled functions that settle them must be allowed every call they make doing it. The
purge deletes the bodies dead requests left (under `manifests/`, a prefix it touches for
nothing else) and settles their items; retention, in the collector, deletes a manifest whose
body is in S3 (its transaction puts the item, then the body and the item are deleted)."""

from __future__ import annotations

import pytest

from chalicelib.lifecycle.jobs import never
from chalicelib.lifecycle.policy import HOUR
from chalicelib.registry import Registry
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.keys import tag_sk
from chalicelib.storage.table import to_item
from tests.api.test_lifecycle_purge import died
from tests.deploy.test_least_privilege import (
    Recorder,
    Stage,
    allowed,
    push,
    put_manifest,
    running,
)
from tests.helpers import manifest_body

PAD = 300_000  # annotations that put a manifest's body in S3


@pytest.fixture
def stage(registry: Registry, aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> Stage:
    return Stage(registry, aws, monkeypatch)


def denied(stage: Stage, recorder: Recorder, function: str) -> list[tuple[str, str]]:
    return sorted({(a, r) for a, r in recorder.calls.get(function, []) if not allowed(stage.policies[function], a, r)})


def bodies_touched(recorder: Recorder, function: str, action: str) -> list[str]:
    return [r for a, r in recorder.calls.get(function, []) if a == action and "/manifests/" in r]


def test_the_purge_may_delete_and_settle_what_dead_requests_left(stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    api, auth = stage.api, stage.login()
    config, layer = push(api, auth, "team/app", b"{}"), push(api, auth, "team/app", b"layer")

    def large(name: str) -> bytes:
        return manifest_body(config, [(layer, 5)], annotations={"name": name, "pad": "x" * PAD})

    died(monkeypatch, stage.handler.meta, "put_manifest")  # dies before its transaction: its body is no one's
    assert api.put("/v2/team/app/manifests/never", body=large("never"),
                   headers={**auth, "Content-Type": "application/vnd.oci.image.manifest.v1+json"}).status == 500
    died(monkeypatch, stage.handler.meta, "settle_body")  # dies after its transaction: its body is named
    assert api.put("/v2/team/app/manifests/kept", body=large("kept"),
                   headers={**auth, "Content-Type": "application/vnd.oci.image.manifest.v1+json"}).status == 500
    doomed = put_manifest(api, auth, "team/app", "doomed", large("doomed"))
    died(monkeypatch, stage.handler.blobs, "delete")  # dies after its transaction, before deleting the body
    assert api.delete(f"/v2/team/app/manifests/{doomed}", headers=auth).status == 500
    with Recorder(stage.aws) as recorder, running("purge_uploads"):
        assert stage.housekeeping(3).purge().bodies == 2
    assert bodies_touched(recorder, "purge_uploads", "s3:DeleteObject"), "the purge deleted no body"
    assert denied(stage, recorder, "purge_uploads") == []
    assert api.get("/v2/team/app/manifests/kept", headers=auth).status == 200


def test_retention_may_delete_a_manifest_whose_body_is_in_s3(stage: Stage) -> None:
    api, auth = stage.api, stage.login()
    config = push(api, auth, "team/app", b"{}")
    for tag in ("old", "new"):
        layer = push(api, auth, "team/app", tag.encode())
        put_manifest(api, auth, "team/app", tag,
                     manifest_body(config, [(layer, 3)], annotations={"pad": "x" * PAD}))
    # An hour older, so "keep the newest tag" expires it.
    stage.aws.dynamodb.update_item(TableName=stage.settings.table, Key=to_item({"pk": "repo#team/app",
                                                                               "sk": tag_sk("old")}),
                                   UpdateExpression="SET created = created - :h",
                                   ExpressionAttributeValues=to_item({":h": int(HOUR)}))
    with Recorder(stage.aws) as recorder, running("collect_garbage"):
        stage.housekeeping(24 * 30).scheduled_collection(never)
    assert api.get("/v2/team/app/manifests/old", headers=auth).status == 404
    assert bodies_touched(recorder, "collect_garbage", "s3:DeleteObject"), "retention deleted no body"
    assert denied(stage, recorder, "collect_garbage") == []
