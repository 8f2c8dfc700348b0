"""Online garbage collection: reference counts, the grace period, the races with pushes, and a
collector that stops and resumes without losing anything."""

from __future__ import annotations

import os

import pytest

from chalicelib.lifecycle.collector import Busy
from chalicelib.lifecycle.jobs import never
from chalicelib.lifecycle.purge import purge_uploads
from chalicelib.storage.housekeeping import HousekeepingStore
from tests.api.lifecycle_support import Lab, error_code
from tests.helpers import AwsCallCounter, digest_of, manifest_body

REPO = "team/app"


def refs(lab: Lab, data: bytes) -> int | None:
    item = lab.blob_item(digest_of(data))
    return item.get("refs") if item else None


def test_a_manifest_counts_each_distinct_blob_once_per_repository(lab: Lab) -> None:
    config, layer = b'{"a":1}', os.urandom(64)
    digest, body = lab.push_image(REPO, "1", [layer, layer], config=config)  # a layer listed twice
    assert refs(lab, layer) == 1 and refs(lab, config) == 1
    # The same manifest again, under another tag or by digest: not counted again.
    assert lab.put_manifest(REPO, "again", body).status == 201
    assert lab.put_manifest(REPO, digest, body).status == 201
    assert refs(lab, layer) == 1
    # The same manifest in another repository counts there.
    lab.push_image("other/app", "1", [layer], config=config)
    assert refs(lab, layer) == 2
    # A delete counts out; deleting a tag does not (the manifest stays).
    assert lab.client.delete(f"/v2/{REPO}/manifests/again").status == 202
    assert refs(lab, layer) == 2
    assert lab.client.delete(f"/v2/{REPO}/manifests/{digest}").status == 202
    assert refs(lab, layer) == 1 and refs(lab, config) == 1


def test_blobs_are_recorded_touched_and_with_the_repositories_linking_them(lab: Lab) -> None:
    digest = lab.push_blob(REPO, b"shared")
    assert lab.client.post(f"/v2/mirror/app/blobs/uploads/?mount={digest}&from={REPO}").status == 201
    lab.push_blob("third/app", b"shared")  # same bytes pushed again: linked, not stored twice
    item = lab.blob_item(digest)
    assert item is not None and item["refs"] == 0 and item["touched"] >= item["created"]
    assert item["repos"] == {REPO, "mirror/app", "third/app"}
    assert lab.client.delete(f"/v2/mirror/app/blobs/{digest}").status == 202
    assert lab.blob_item(digest)["repos"] == {REPO, "third/app"}


def test_collection_frees_only_unreferenced_blobs_past_the_grace_period(lab: Lab) -> None:
    lab.configure(gc_grace_hours=1)
    kept_digest, kept_body = lab.push_image(REPO, "kept", [b"base", b"app-1"])
    gone_digest, _ = lab.push_image(REPO, "gone", [b"base", b"app-2"])
    orphan = lab.push_blob(REPO, b"pushed, never used")
    assert lab.client.delete(f"/v2/{REPO}/manifests/{gone_digest}").status == 202
    objects = len(lab.objects())

    assert lab.collect().blobs == 0  # within the grace period: nothing goes
    assert len(lab.objects()) == objects

    lab.clock.later(2)
    run = lab.collect()
    assert run.complete and run.blobs == 2 and run.bytes == len(b"app-2") + len(b"pushed, never used")
    assert len(lab.objects()) == objects - 2
    for gone in (digest_of(b"app-2"), orphan):
        assert lab.blob_item(gone) is None
        assert lab.client.head(f"/v2/{REPO}/blobs/{gone}").status == 404
    assert {i["refs"] for i in lab.blob_items()} == {1}  # config, base and app-1, used by "kept"
    lab.pulls_exactly(REPO, "kept", kept_body)
    lab.pulls_exactly(REPO, kept_digest, kept_body)


def test_push_blob_then_collection_then_manifest_loses_nothing(lab: Lab) -> None:
    """The race the design exists for. Within the grace period the blob stays; past it (a
    client that stalled for a day), the collector takes it and the manifest push fails
    cleanly instead of storing a manifest that points at nothing."""
    lab.configure(gc_grace_hours=1)
    config, layer = lab.push_blob(REPO, b"{}"), lab.push_blob(REPO, b"layer")
    body = manifest_body(config, [(layer, 5)])
    lab.collect()
    assert lab.put_manifest(REPO, "soon", body).status == 201

    late = manifest_body(lab.push_blob(REPO, b"{ }"), [(lab.push_blob(REPO, b"late layer"), 10)])
    lab.clock.later(2)
    lab.collect()
    response = lab.put_manifest(REPO, "late", late)
    assert response.status == 400 and error_code(response) == "MANIFEST_BLOB_UNKNOWN"
    assert lab.client.get(f"/v2/{REPO}/manifests/late").status == 404
    # What any client does next: push the missing blobs again, then the manifest.
    lab.push_blob(REPO, b"{ }")
    lab.push_blob(REPO, b"late layer")
    assert lab.put_manifest(REPO, "late", late).status == 201
    lab.pulls_exactly(REPO, "late", late)


def test_a_blob_being_collected_cannot_be_counted_linked_or_mounted(lab: Lab) -> None:
    """Between marking a blob and deleting its links, the links still answer the manifest
    push's pre-check: the transaction's condition on the blob record is what refuses it."""
    config, layer = lab.push_blob(REPO, b"{}"), lab.push_blob(REPO, b"layer")
    store: HousekeepingStore = lab.jobs.store
    marked = store.doom(layer, cutoff=int(lab.clock()) + 10, now=int(lab.clock()))
    assert marked is not None and marked["repos"] == {REPO}
    response = lab.put_manifest(REPO, "v1", manifest_body(config, [(layer, 5)]))
    assert response.status == 400 and error_code(response) == "MANIFEST_BLOB_UNKNOWN"
    assert response.json()["errors"][0]["detail"] == {"digests": [layer]}
    assert refs(lab, b"{}") == 0  # the whole transaction failed: the config was not counted either
    # A mount of it starts an upload instead.
    assert lab.client.post(f"/v2/other/app/blobs/uploads/?mount={layer}&from={REPO}").status == 202
    assert lab.client.post(f"/v2/other/app/blobs/uploads/?mount={layer}").status == 202


def test_a_new_push_replaces_a_blob_being_collected_and_survives_the_collector(lab: Lab) -> None:
    layer = lab.push_blob(REPO, b"layer")
    old_key = lab.blob_item(layer)["key"]
    assert lab.jobs.store.doom(layer, cutoff=int(lab.clock()) + 10, now=int(lab.clock())) is not None
    lab.push_blob("other/app", b"layer")  # stores its own copy: the marked one is on its way out
    item = lab.blob_item(layer)
    assert item is not None and "doomed" not in item and item["key"] != old_key and item["repos"] == {"other/app"}
    body = manifest_body(lab.push_blob("other/app", b"{}"), [(layer, 5)])
    assert lab.put_manifest("other/app", "v1", body).status == 201
    # The collector finishes the marked copy (by its key) and leaves the new one alone.
    lab.clock.later(48)
    lab.collect()
    assert old_key not in lab.objects()
    assert lab.client.head(f"/v2/{REPO}/blobs/{layer}").status == 404
    lab.pulls_exactly("other/app", "v1", body)


def test_interrupted_collection_resumes_and_loses_nothing(lab: Lab) -> None:
    lab.configure(policies=[{"match": "*", "expire_untagged_after_days": 0}], gc_grace_hours=0)
    kept = [lab.push_image(f"keep/r{i}", "v1", [b"base", f"keep {i}".encode()]) for i in range(3)]
    for i in range(3):
        digest, _ = lab.push_image(f"drop/r{i}", "v1", [b"base", f"drop {i}".encode()])
        assert lab.client.delete(f"/v2/drop/r{i}/manifests/v1").status == 202  # untagged: retention takes it
    for i in range(8):
        lab.push_blob("orphans/r", f"orphan {i}".encode())
    lab.clock.later(1)

    stops = iter([False, True] + [False, False, True] * 100)  # stop after a repository, then every 2 pages
    collector = lab.collector(page_size=3)
    runs = [collector.run(lambda: next(stops))]
    assert not runs[0].complete and runs[0].phase == "retention"
    while not runs[-1].complete:
        runs.append(lab.collector(page_size=3).run(lambda: next(stops)))
    assert len(runs) > 3
    last = runs[-1]
    assert last.manifests == 3 and last.blobs == 3 + 8 and last.tags == 0
    assert lab.jobs.store.gc_state().get("run") is None  # the checkpoint goes with the run
    for repo_index, (_, body) in enumerate(kept):
        lab.pulls_exactly(f"keep/r{repo_index}", "v1", body)
    assert all(i["refs"] > 0 for i in lab.blob_items())
    assert len(lab.objects()) == len(lab.blob_items())


def test_a_collector_that_crashed_mid_blob_is_finished_by_the_next(lab: Lab) -> None:
    lab.configure(gc_grace_hours=0)
    digest, body = lab.push_image(REPO, "v1", [b"kept"])
    orphan = lab.push_blob(REPO, b"orphan")
    lab.clock.later(1)

    def crash(keys: list[str]) -> None:
        raise ConnectionError("lost S3 mid-sweep")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lab.jobs.blobs, "delete", crash)
        with pytest.raises(ConnectionError):
            lab.collect()
    item = lab.blob_item(orphan)
    assert item is not None and "doomed" in item  # marked, its link gone, its bytes still there
    assert lab.client.head(f"/v2/{REPO}/blobs/{orphan}").status == 404
    run = lab.collect()
    assert run.complete and run.blobs == 1 and lab.blob_item(orphan) is None
    assert item["key"] not in lab.objects()
    lab.pulls_exactly(REPO, digest, body)


def test_one_collection_at_a_time(lab: Lab) -> None:
    store = lab.jobs.store
    now = int(lab.clock())
    assert store.claim("someone else", now, now + 60) is not None
    with pytest.raises(Busy):
        lab.collect()
    lab.clock.later(1)  # their lease ran out: ours now
    assert lab.collect().complete


def test_scheduled_collection_runs_once_per_interval_and_carries_on_interrupted_runs(lab: Lab) -> None:
    lab.configure(gc_interval_hours=24)
    collector = lab.collector()
    assert collector.due()
    lab.collect()
    assert not collector.due()
    lab.clock.later(25)
    assert collector.due()
    lab.push_blob(REPO, b"something to page over")
    assert not lab.collector(page_size=1).run(lambda: True).complete
    assert collector.due()  # an unfinished run is always due
    assert lab.jobs.scheduled_collection(lambda: False)["complete"] is True
    assert lab.jobs.scheduled_collection(lambda: False) == {"status": "not due"}


def test_dry_run_reports_what_would_go_and_changes_nothing(lab: Lab) -> None:
    lab.configure(policies=[{"match": "*", "keep_newest_tags": 1, "expire_untagged_after_days": 1}],
                  gc_grace_hours=1)
    old, _ = lab.push_image(REPO, "old", [b"base", b"old layer"])
    lab.backdate_tag(REPO, "old", 48)
    lab.backdate_manifest(REPO, old, 48)
    lab.push_image(REPO, "new", [b"base", b"new layer"])
    lab.push_blob(REPO, b"orphan")
    lab.clock.later(2)  # every blob is now past the grace period
    before = (lab.blob_items(), lab.objects())
    lines: list[str] = []
    run = lab.jobs.collector(lines.append).dry_run()
    # The old tag, its manifest, the layer only it used (counted out only in the simulation)
    # and the orphan; the shared config and base layer stay.
    assert (run.tags, run.manifests, run.blobs, run.bytes) == (1, 1, 2, len(b"old layer") + len(b"orphan"))
    assert f"tag {REPO}:old ({old})" in lines and f"manifest {REPO}@{old}" in lines
    assert f"blob {digest_of(b'old layer')} (9 bytes)" in lines
    assert (lab.blob_items(), lab.objects()) == before
    real = lab.collect()
    assert (real.tags, real.manifests, real.blobs, real.bytes) == (run.tags, run.manifests, run.blobs, run.bytes)
    assert lab.client.get(f"/v2/{REPO}/manifests/old").status == 404
    assert lab.client.get(f"/v2/{REPO}/manifests/{old}").status == 404


def test_large_manifest_bodies_are_per_push_and_deleted_with_the_manifest(lab: Lab) -> None:
    pad = {"annotations": {"pad": "x" * 300_000}}
    digest, body = lab.push_image(REPO, "big", [b"layer"], **pad)
    bodies = [k for k in lab.objects() if k.startswith("manifests/")]
    assert len(bodies) == 1
    assert lab.put_manifest(REPO, "big-again", body).status == 201  # a repeat keeps the one copy
    assert [k for k in lab.objects() if k.startswith("manifests/")] == bodies
    lab.push_image("other/app", "big", [b"layer"], **pad)  # its own copy, deleted independently
    both = {k for k in lab.objects() if k.startswith("manifests/")}
    assert len(both) == 2
    assert lab.client.delete(f"/v2/{REPO}/manifests/{digest}").status == 202
    assert {k for k in lab.objects() if k.startswith("manifests/")} == both - set(bodies)
    assert lab.client.get("/v2/other/app/manifests/big").body == body


def test_images_with_more_layers_than_a_transaction_holds(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    # DynamoDB takes 100 actions per transaction; 8 here, so a small image needs the same split
    # (moto copies the whole table for every transaction: 100-layer images would be slow).
    for module in ("manifests", "blobs"):
        monkeypatch.setattr(f"chalicelib.storage.{module}.TRANSACTION_LIMIT", 8)
    layers = [f"layer {i}".encode() for i in range(20)]  # 21 blobs: 5 in the manifest's transaction, 16 ahead
    digest, body = lab.push_image(REPO, "tall", layers)
    assert {refs(lab, layer) for layer in layers} == {1}
    assert lab.put_manifest(REPO, "tall-again", body).status == 201
    assert {refs(lab, layer) for layer in layers} == {1}
    short_lived = lab.push_blob(REPO, b"short-lived")
    assert lab.jobs.store.doom(short_lived, int(lab.clock()) + 10, int(lab.clock()))
    described = [(digest_of(x), len(x)) for x in layers]
    # Gone from the second batch counted ahead (the first is counted out again), and gone from
    # the manifest's own transaction (both batches ahead are counted out again).
    for listed in (described + [(short_lived, 11)], [(short_lived, 11)] + described):
        response = lab.put_manifest(REPO, "broken", manifest_body(digest_of(b"{}"), listed))
        assert response.status == 400 and error_code(response) == "MANIFEST_BLOB_UNKNOWN"
        assert response.json()["errors"][0]["detail"] == {"digests": [short_lived]}
        assert {refs(lab, layer) for layer in layers} == {1}
    assert lab.client.delete(f"/v2/{REPO}/manifests/{digest}").status == 202
    assert {refs(lab, layer) for layer in layers} == {0}


def test_a_manifest_push_is_one_transaction_that_also_checks_its_blobs(lab: Lab) -> None:
    body = manifest_body(lab.push_blob(REPO, b"{}"), [(lab.push_blob(REPO, b"layer"), 5)])
    calls = AwsCallCounter(lab.aws.dynamodb, lab.aws.s3).during(lambda: lab.put_manifest(REPO, "v1", body))
    assert calls == ["dynamodb.TransactWriteItems"]


def test_a_collection_and_a_purge_read_the_garbage_not_the_registry(lab: Lab) -> None:
    """The same garbage in a registry eight times larger costs the same AWS calls: the jobs read
    the sweep index's candidates, never the whole table (pages of 5 items here, so a scan
    would take more pages as the table grows)."""
    lab.configure(gc_grace_hours=0, upload_max_age_hours=1)
    counter = AwsCallCounter(lab.aws.dynamodb, lab.aws.s3)

    def purge() -> None:
        cutoff = int(lab.clock()) - lab.jobs.settings.lifecycle.upload_max_age
        purge_uploads(lab.jobs.store, lab.jobs.uploads, cutoff, never, page_size=5)

    def garbage_and_calls(images: int) -> tuple[list[str], list[str]]:
        for i in range(images):
            lab.push_image(f"size/{images}-{i}", "v1", [f"layer {images} {i}".encode()])
            lab.client.post(f"/v2/size/{images}-{i}/blobs/uploads/")  # live: the purge must not read it
        orphan = lab.push_blob(REPO, f"orphan {images}".encode())
        lab.backdate(f"blob#{orphan}", "blob", 1, "touched")
        location = lab.client.post(f"/v2/{REPO}/blobs/uploads/").header("Location")
        lab.client.patch(location, body=b"abandoned")
        lab.backdate(f"upload#{location.rsplit('/', 1)[1]}", "upload", 2, "touched")
        return sorted(counter.during(purge)), sorted(counter.during(lambda: lab.collector(page_size=5).run(never)))

    small = garbage_and_calls(1)
    large = garbage_and_calls(8)
    assert large == small
    assert small[1].count("dynamodb.UpdateItem") == 3  # the lease taken, one blob marked, the lease released
