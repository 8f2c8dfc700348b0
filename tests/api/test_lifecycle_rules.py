"""Immutable tags, delete switches, and retention rules as the collector applies them."""

from __future__ import annotations

import json
import threading

from chalicelib.errors import RegistryError
from chalicelib.manifests import mediatypes as mt
from tests.api.lifecycle_support import Lab, error_code
from tests.helpers import digest_of, manifest_body

REPO = "team/app"


def image(lab: Lab, repo: str, name: str) -> bytes:
    """A manifest whose blobs are in the repository, not yet pushed itself."""
    return manifest_body(lab.push_blob(repo, b"{}"), [(lab.push_blob(repo, name.encode()), len(name))])


def index_body(children: list[bytes]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": digest_of(c), "size": len(c)} for c in children]}).encode()


# ---- immutable tags -----------------------------------------------------------------------

def test_an_immutable_tag_refuses_another_digest_and_accepts_the_same(lab: Lab) -> None:
    lab.configure(policies=[{"match": "team/*", "immutable_tags": ["v*"]}])
    first, second = image(lab, REPO, "one"), image(lab, REPO, "two")
    assert lab.put_manifest(REPO, "v1", first).status == 201
    refused = lab.put_manifest(REPO, "v1", second)
    assert refused.status == 403 and error_code(refused) == "DENIED"
    error = refused.json()["errors"][0]
    assert "immutable" in error["message"] and error["detail"] == {"tag": "v1", "digest": digest_of(first)}
    assert lab.client.get(f"/v2/{REPO}/manifests/v1").body == first
    assert lab.put_manifest(REPO, "v1", first).status == 201  # the same digest again: fine
    # Tags the pattern does not cover, and other repositories, stay mutable.
    assert lab.put_manifest(REPO, "latest", first).status == 201
    assert lab.put_manifest(REPO, "latest", second).status == 201
    assert lab.put_manifest("elsewhere/app", "v1", image(lab, "elsewhere/app", "one")).status == 201
    assert lab.put_manifest("elsewhere/app", "v1", image(lab, "elsewhere/app", "two")).status == 201


def test_a_refused_push_leaves_no_manifest_and_no_count(lab: Lab) -> None:
    lab.configure(policies=[{"match": "*", "immutable_tags": True}])
    first, second = image(lab, REPO, "one"), image(lab, REPO, "two")
    assert lab.put_manifest(REPO, "v1", first).status == 201
    assert lab.put_manifest(REPO, "v1", second).status == 403
    assert lab.client.get(f"/v2/{REPO}/manifests/{digest_of(second)}").status == 404
    item = lab.blob_item(digest_of(b"two"))
    assert item is not None and item["refs"] == 0


def test_a_deleted_immutable_tag_can_be_pushed_anew(lab: Lab) -> None:
    lab.configure(policies=[{"match": "*", "immutable_tags": True}])
    assert lab.put_manifest(REPO, "v1", image(lab, REPO, "one")).status == 201
    assert lab.client.delete(f"/v2/{REPO}/manifests/v1").status == 202
    assert lab.put_manifest(REPO, "v1", image(lab, REPO, "two")).status == 201


def test_concurrent_pushes_of_an_immutable_tag_one_digest_wins(lab: Lab) -> None:
    lab.configure(policies=[{"match": "*", "immutable_tags": True}], threads=True)
    bodies = [image(lab, REPO, f"racer {i}") for i in range(6)]
    outcomes: dict[int, str] = {}
    barrier = threading.Barrier(len(bodies))

    def push(i: int) -> None:
        barrier.wait()
        try:
            lab.registry.manifests.put(REPO, "v1", bodies[i], mt.OCI_MANIFEST)
            outcomes[i] = "ok"
        except RegistryError as error:
            outcomes[i] = error.kind.code

    threads = [threading.Thread(target=push, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, outcome in outcomes.items() if outcome == "ok"]
    assert len(winners) == 1 and sorted(outcomes.values()).count("DENIED") == len(bodies) - 1
    assert lab.client.get(f"/v2/{REPO}/manifests/v1").body == bodies[winners[0]]


# ---- delete switches ----------------------------------------------------------------------

def test_deletes_can_be_switched_off_per_deployment(lab: Lab) -> None:
    body = image(lab, REPO, "one")
    assert lab.put_manifest(REPO, "v1", body).status == 201
    lab.configure(delete_manifests=False, delete_blobs=False)
    for path in (f"/v2/{REPO}/manifests/v1", f"/v2/{REPO}/manifests/{digest_of(body)}",
                 f"/v2/{REPO}/blobs/{digest_of(b'one')}"):
        response = lab.client.delete(path)
        assert response.status == 405 and error_code(response) == "UNSUPPORTED"
        assert "disabled" in response.json()["errors"][0]["message"]
    assert lab.client.get(f"/v2/{REPO}/manifests/v1").status == 200
    lab.configure(delete_manifests=True, delete_blobs=False)
    assert lab.client.delete(f"/v2/{REPO}/manifests/v1").status == 202
    assert lab.client.delete(f"/v2/{REPO}/blobs/{digest_of(b'one')}").status == 405


# ---- retention ----------------------------------------------------------------------------

def test_retention_keeps_the_newest_tags_and_expires_untagged_manifests(lab: Lab) -> None:
    lab.configure(policies=[{"match": "team/*", "keep_newest_tags": 3, "expire_untagged_after_days": 7,
                             "expire_tags": [{"match": "pr-*", "after_days": 3}]}], gc_grace_hours=1)
    pushed: dict[str, bytes] = {}
    for age_days, tag in [(10, "1.0"), (9, "1.1"), (8, "1.2"), (4, "pr-7"), (1, "2.0")]:
        body = image(lab, REPO, f"image {tag}")
        assert lab.put_manifest(REPO, tag, body).status == 201
        lab.backdate_tag(REPO, tag, age_days * 24)
        lab.backdate_manifest(REPO, digest_of(body), age_days * 24)
        pushed[tag] = body
    untouched = image(lab, "other/app", "no policy here")
    assert lab.put_manifest("other/app", "old", untouched).status == 201
    lab.backdate_tag("other/app", "old", 999 * 24)
    lab.clock.later(2)

    dry = lab.jobs.collector().dry_run()
    assert lab.client.get(f"/v2/{REPO}/tags/list").json()["tags"] == ["1.0", "1.1", "1.2", "2.0", "pr-7"]
    run = lab.collect()
    assert (run.tags, run.manifests, run.blobs) == (dry.tags, dry.manifests, dry.blobs) == (3, 2, 2)
    # The newest three are 2.0, pr-7 and 1.2, but pr-7's pattern expires it after 3 days;
    # 1.0 and 1.1 lose their tags and, untagged and older than 7 days, their manifests.
    assert lab.client.get(f"/v2/{REPO}/tags/list").json()["tags"] == ["1.2", "2.0"]
    for tag in ("1.0", "1.1"):
        assert lab.client.get(f"/v2/{REPO}/manifests/{digest_of(pushed[tag])}").status == 404
        assert lab.blob_item(digest_of(f"image {tag}".encode())) is None
    # pr-7's manifest is untagged but only 4 days old: it stays, and so does its layer.
    assert lab.client.get(f"/v2/{REPO}/manifests/{digest_of(pushed['pr-7'])}").status == 200
    for tag in ("1.2", "2.0"):
        lab.pulls_exactly(REPO, tag, pushed[tag])
    lab.pulls_exactly("other/app", "old", untouched)


def test_retention_never_removes_an_index_child_or_a_signature_of_what_stays(lab: Lab) -> None:
    lab.configure(policies=[{"match": "*", "expire_untagged_after_days": 1}])
    children = [image(lab, REPO, f"arch {i}") for i in range(2)]
    for child in children:
        assert lab.put_manifest(REPO, digest_of(child), child).status == 201
    index = index_body(children)
    assert lab.put_manifest(REPO, "multi", index, mt.OCI_INDEX).status == 201
    signature = manifest_body(lab.push_blob(REPO, b"{}"), [(lab.push_blob(REPO, b"sig"), 3)],
                              subject={"mediaType": mt.OCI_INDEX, "digest": digest_of(index), "size": len(index)})
    assert lab.put_manifest(REPO, digest_of(signature), signature).status == 201
    for body in [*children, index, signature]:
        lab.backdate_manifest(REPO, digest_of(body), 30 * 24)
    assert lab.collect().manifests == 0
    # Untag the index: everything is old and untagged now, and goes, parents first.
    assert lab.client.delete(f"/v2/{REPO}/manifests/multi").status == 202
    lines: list[str] = []
    assert lab.jobs.collector(lines.append).run(lambda: False).manifests == 4
    order = [line for line in lines if line.startswith("manifest ")]
    assert order.index(f"manifest {REPO}@{digest_of(index)}") < min(
        order.index(f"manifest {REPO}@{digest_of(child)}") for child in children)
    assert order.index(f"manifest {REPO}@{digest_of(index)}") < order.index(f"manifest {REPO}@{digest_of(signature)}")


def test_a_tag_pushed_again_after_the_collector_read_it_stays(lab: Lab) -> None:
    body = image(lab, REPO, "one")
    assert lab.put_manifest(REPO, "pr-1", body).status == 201
    name, _, _, version = lab.jobs.store.tags(REPO)[0]
    # The same digest again, within the same second: a push time would not tell, the version does.
    assert lab.put_manifest(REPO, "pr-1", body).status == 201
    assert not lab.jobs.store.expire_tag(REPO, name, version)
    name, _, _, version = lab.jobs.store.tags(REPO)[0]
    assert lab.put_manifest(REPO, "pr-1", image(lab, REPO, "two")).status == 201  # re-pointed meanwhile
    assert not lab.jobs.store.expire_tag(REPO, name, version)
    record = lab.registry.meta.get_manifest(REPO, digest_of(body))
    assert record is not None
    assert lab.put_manifest(REPO, digest_of(body), body).status == 201  # pushed again since the collector read it
    assert not lab.registry.manifests.remove(REPO, record, only_as_read=True)
    assert lab.client.get(f"/v2/{REPO}/manifests/{digest_of(body)}").status == 200

