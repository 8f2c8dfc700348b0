"""Attacks on manifest bodies kept in S3 (docs/lifecycle.md, "Manifest bodies in S3"): a push
and a delete of the same manifest, or a delete and the purge, both settle the one unsettled
item a body has (`body#<key>`). One must never settle what the other noted and has yet to
finish; nor may a stored manifest lose its body, whatever races it."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.lifecycle.audit import Audit
from chalicelib.lifecycle.consistency import ORPHAN_OBJECT
from tests.api.lifecycle_support import Lab
from tests.api.test_lifecycle_purge import died
from tests.helpers import digest_of, manifest_body

REPO = "team/app"
PAST_THE_LAG = 3  # hours: past the purge's two for unsettled bodies


@pytest.fixture
def lab(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Lab:
    monkeypatch.setattr("chalicelib.manifests.service.INLINE_LIMIT", 0)  # every body goes to S3
    return lab


def bodies(lab: Lab) -> list[str]:
    return [key for key in lab.objects() if key.startswith("manifests/")]


def image(lab: Lab, name: str, **extra: Any) -> bytes:
    """A manifest whose blobs are in the repository, not yet pushed itself."""
    return manifest_body(lab.push_blob(REPO, b"{}"), [(lab.push_blob(REPO, name.encode()), len(name))], **extra)


def settling(kwargs: dict[str, Any]) -> bool:
    """A DeleteItem of an unsettled body's item."""
    return str(kwargs["Key"]["pk"]["S"]).startswith("body#")


def delete_that_dies(lab: Lab, monkeypatch: pytest.MonkeyPatch, digest: str) -> None:
    """DELETE of the manifest whose Lambda dies after its transaction, before it deletes the
    body (as the handler runs it: the delete commits, then the body's DeleteObject never comes)."""
    died(monkeypatch, lab.registry.blobs, "delete")
    with pytest.raises(ConnectionError):
        lab.registry.manifests.delete(REPO, digest)


def no_body_is_left(lab: Lab) -> None:
    """After the purge and past the audit's grace: no body in S3 that no record names."""
    lab.clock.later(PAST_THE_LAG)
    lab.jobs.purge()
    lab.clock.later(48)
    audit = Audit.build(lab.registry.settings, lab.interjections, lab.clock)
    orphans = [f for f in audit.run().findings if f.kind == ORPHAN_OBJECT]
    assert orphans == [], orphans


def test_a_delete_between_a_push_and_its_settling_leaves_no_body_behind(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The push stored its record and is about to settle its body; a DELETE of that manifest
    commits (noting the body unsettled again) and dies before deleting the body. The push's
    settling must not erase the delete's note: else nothing ever deletes that body."""
    body = image(lab, "raced")
    digest = digest_of(body)
    lab.interjections.before("delete_item", settling, lambda: delete_that_dies(lab, monkeypatch, digest))
    assert lab.put_manifest(REPO, "1", body).status == 201
    assert lab.client.get(f"/v2/{REPO}/manifests/{digest}").status == 404  # the delete won
    assert len(bodies(lab)) == 1  # the deleted manifest's body, its note now the delete's
    no_body_is_left(lab)
    assert bodies(lab) == []


def test_a_delete_between_the_purges_check_and_its_settling_leaves_no_body_behind(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A push whose Lambda died after its transaction left its body unsettled, and named. The
    purge reads the record (named: keep), then a DELETE of the manifest commits and dies before
    deleting the body; the purge's settling must not erase the delete's note."""
    body = image(lab, "kept by the purge")
    digest = digest_of(body)
    died(monkeypatch, lab.registry.meta, "settle_body")
    with pytest.raises(ConnectionError):
        lab.registry.manifests.put(REPO, "1", body, "application/vnd.oci.image.manifest.v1+json")
    lab.pulls_exactly(REPO, "1", body)  # stored, its note left for the purge
    lab.clock.later(PAST_THE_LAG)
    lab.interjections.before("delete_item", settling, lambda: delete_that_dies(lab, monkeypatch, digest))
    assert lab.jobs.purge().bodies == 0  # it was named when the purge looked
    assert lab.client.get(f"/v2/{REPO}/manifests/{digest}").status == 404
    no_body_is_left(lab)
    assert bodies(lab) == []


def test_a_push_again_of_a_stored_manifest_settles_only_its_own_body(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A repeat push (the manifest is stored: `_push_again`) deletes its own new body, never the
    stored one; and a tag it writes serves the stored body."""
    body = image(lab, "again")
    assert lab.put_manifest(REPO, "1", body).status == 201
    stored = bodies(lab)
    for tag in ("2", "1", "3"):
        assert lab.put_manifest(REPO, tag, body).status == 201
    assert bodies(lab) == stored
    for reference in ("1", "2", "3", digest_of(body)):
        lab.pulls_exactly(REPO, reference, body)
    no_body_is_left(lab)
    for reference in ("1", "2", "3", digest_of(body)):
        lab.pulls_exactly(REPO, reference, body)


def test_dead_pushes_of_the_same_manifest_are_settled_in_one_run(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three pushes of one manifest die before their transaction (the client retried each);
    the fourth stores it. The purge asks one record about four notes, deletes the three bodies
    no record names, keeps the stored one."""
    body = image(lab, "retried")
    for _ in range(3):
        died(monkeypatch, lab.registry.meta, "put_manifest")
        assert lab.put_manifest(REPO, "1", body).status == 500
    assert lab.put_manifest(REPO, "1", body).status == 201
    assert len(bodies(lab)) == 4
    lab.clock.later(PAST_THE_LAG)
    assert lab.jobs.purge().bodies == 3
    assert len(bodies(lab)) == 1
    lab.pulls_exactly(REPO, "1", body)
    assert lab.jobs.purge().bodies == 0


def test_a_delete_and_a_push_again_within_the_lag_keep_the_new_body(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Delete (dying before the body's deletion), then the same digest pushed again to the same
    repository within the two hours: the purge deletes the old body and keeps the new one."""
    body = image(lab, "back again")
    assert lab.put_manifest(REPO, "1", body).status == 201
    delete_that_dies(lab, monkeypatch, digest_of(body))
    assert lab.put_manifest(REPO, "1", body).status == 201
    assert len(bodies(lab)) == 2
    lab.clock.later(PAST_THE_LAG)
    assert lab.jobs.purge().bodies == 1
    lab.pulls_exactly(REPO, "1", body)
    lab.pulls_exactly(REPO, digest_of(body), body)


def test_refused_pushes_of_an_index_and_under_an_immutable_tag_leave_no_body(lab: Lab) -> None:
    """Refusals (MANIFEST_BLOB_UNKNOWN for an index naming a missing child or an image naming a
    missing blob, DENIED for an immutable tag that names another manifest) delete their body at
    once and settle it: nothing for the purge."""
    lab.configure([{"match": REPO, "immutable_tags": ["v*"]}])
    first, other = image(lab, "first"), image(lab, "other")
    assert lab.put_manifest(REPO, "v1", first).status == 201
    kept = bodies(lab)
    assert lab.put_manifest(REPO, "v1", other).status == 403
    index = ('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
             f'{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest_of(other)}","size":1}}'
             ']}').encode()
    assert lab.put_manifest(REPO, "multi", index, "application/vnd.oci.image.index.v1+json").status == 400
    unknown = manifest_body(digest_of(b"{}"), [(digest_of(b"never pushed"), 12)])  # refused by its transaction
    assert lab.put_manifest(REPO, "2", unknown).status == 400
    assert bodies(lab) == kept
    assert [i for i in lab.items() if i["pk"].startswith("body#")] == []
    lab.pulls_exactly(REPO, "v1", first)
