"""Manifest delete, re-tag, re-push and tag delete race one another and stay linearizable: a
tag never names a deleted manifest and reference counts stay exact. Each race is made
deterministic by running the competing request between what a request read and its write
(`Lab.interjections`); a threaded run then mixes them freely."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib.errors import Oci, RegistryError
from chalicelib.manifests import mediatypes as mt
from tests.api.lifecycle_support import Lab
from tests.helpers import digest_of, manifest_body

REPO = "team/app"


def image(lab: Lab, name: str) -> bytes:
    """A manifest whose blobs are in the repository, not yet pushed itself."""
    return manifest_body(lab.push_blob(REPO, b"{}"), [(lab.push_blob(REPO, name.encode()), len(name))])


def writes(sort_key: str) -> Any:
    """Whether a transaction writes (puts, updates or deletes) the item with this sort key."""
    def check(call: dict[str, Any]) -> bool:
        return any(body["Key" if kind != "Put" else "Item"]["sk"]["S"] == sort_key
                   for action in call["TransactItems"] for kind, body in action.items())
    return check


def test_a_tag_pushed_while_its_manifest_is_deleted_never_names_a_deleted_manifest(lab: Lab) -> None:
    body = image(lab, "layer")
    digest = digest_of(body)
    assert lab.put_manifest(REPO, "v1", body).status == 201
    # The delete has read the manifest and its tags (v1); before it writes, the same manifest
    # is pushed under a new tag.
    lab.interjections.before("transact_write_items", writes(f"manifest#{digest}"),
                             lambda: lab.put_manifest(REPO, "v2", body))
    assert lab.client.delete(f"/v2/{REPO}/manifests/{digest}").status == 202
    # Either order is a valid history: push then delete (no v2) or delete then push (v2 and
    # its manifest). A v2 naming a deleted manifest, whose layers the collector frees, is not.
    if lab.client.get(f"/v2/{REPO}/manifests/v2").status == 200:
        lab.pulls_exactly(REPO, digest, body)
    lab.assert_consistent()


def test_a_delete_that_read_before_another_delete_and_a_push_does_not_undo_the_push(lab: Lab) -> None:
    """The version the delete checks is new on every write: the same manifest deleted and
    pushed again in between is not the one it read."""
    body = image(lab, "layer")
    digest = digest_of(body)
    assert lab.put_manifest(REPO, "v1", body).status == 201

    def delete_and_push_again() -> None:
        assert lab.client.delete(f"/v2/{REPO}/manifests/{digest}").status == 202
        assert lab.put_manifest(REPO, "v2", body).status == 201

    lab.interjections.before("transact_write_items", writes(f"manifest#{digest}"), delete_and_push_again)
    lab.client.delete(f"/v2/{REPO}/manifests/{digest}")
    lab.assert_consistent()
    if lab.client.get(f"/v2/{REPO}/manifests/v2").status == 200:
        lab.pulls_exactly(REPO, "v2", body)


def test_a_delete_too_large_for_one_transaction_loses_no_tag_pushed_between_its_batches(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("manifests", "blobs", "table"):
        monkeypatch.setattr(f"chalicelib.storage.{module}.TRANSACTION_LIMIT", 8)
    body = image(lab, "layer")
    digest = digest_of(body)
    tags = [f"t{i:02}" for i in range(12)]  # with the manifest and its blobs: more than 8 actions
    for tag in tags:
        assert lab.put_manifest(REPO, tag, body).status == 201
    transactions: list[int] = []

    def second(call: dict[str, Any]) -> bool:
        transactions.append(1)
        return len(transactions) == 2

    # Between the delete's first and second transaction, push it again under its last tag.
    lab.interjections.before("transact_write_items", second, lambda: lab.put_manifest(REPO, tags[-1], body))
    assert lab.client.delete(f"/v2/{REPO}/manifests/{digest}").status == 202
    lab.assert_consistent()
    # Delete then push: the manifest and the pushed tag. Push then delete: neither.
    remaining = [t for t in tags if lab.client.get(f"/v2/{REPO}/manifests/{t}").status == 200]
    stored = lab.client.get(f"/v2/{REPO}/manifests/{digest}").status == 200
    assert (stored, remaining) in ((False, []), (True, [tags[-1]]))


def test_retention_does_not_remove_a_manifest_tagged_after_it_decided(lab: Lab) -> None:
    lab.configure(policies=[{"match": "*", "expire_untagged_after_days": 1}], gc_grace_hours=0)
    body = image(lab, "old")
    digest = digest_of(body)
    assert lab.put_manifest(REPO, digest, body).status == 201
    lab.backdate_manifest(REPO, digest, 48)
    lab.interjections.before("transact_write_items", writes(f"manifest#{digest}"),
                             lambda: lab.put_manifest(REPO, "keep", body))
    lab.clock.later(1)
    assert lab.collect().manifests == 0
    lab.pulls_exactly(REPO, "keep", body)
    lab.assert_consistent()


def test_deleting_a_tag_while_its_manifest_is_deleted(lab: Lab) -> None:
    body = image(lab, "layer")
    digest = digest_of(body)
    for tag in ("a", "b"):
        assert lab.put_manifest(REPO, tag, body).status == 201
    lab.interjections.before("transact_write_items", writes(f"manifest#{digest}"),
                             lambda: lab.client.delete(f"/v2/{REPO}/manifests/a"))
    assert lab.client.delete(f"/v2/{REPO}/manifests/{digest}").status == 202
    assert [lab.client.get(f"/v2/{REPO}/manifests/{t}").status for t in ("a", "b")] == [404, 404]
    lab.assert_consistent()


def test_deletes_racing_tags_and_pushes_in_threads(lab: Lab) -> None:
    """Rounds of one image pushed, then re-tagged, pushed by digest, deleted by digest and
    untagged by four threads at once; after each round every tag names a stored manifest and
    every count is exact. moto applies a request in steps without a lock, so the clients
    serialise DynamoDB and S3 requests (AWS applies each atomically): the races are between
    requests, as deployed."""
    lab.configure(threads=True)
    failures: list[BaseException] = []

    def work(body: bytes, round_: int, thread: int) -> None:
        """Two threads push the image under new tags (or by digest), two delete it (by digest,
        or a tag)."""
        try:
            for step in range(3):
                if thread < 2:
                    reference = f"r{round_}-{thread}-{step}" if step < 2 else digest_of(body)
                    lab.registry.manifests.put(REPO, reference, body, mt.OCI_MANIFEST)
                    continue
                try:
                    lab.registry.manifests.delete(REPO, digest_of(body) if step < 2 else f"r{round_}-0-0")
                except RegistryError as error:
                    if error.kind is not Oci.MANIFEST_UNKNOWN:
                        raise
        except BaseException as error:  # reported below
            failures.append(error)

    for round_ in range(8):
        body = image(lab, f"round {round_}")
        lab.registry.manifests.put(REPO, f"r{round_}-0", body, mt.OCI_MANIFEST)
        threads = [threading.Thread(target=work, args=(body, round_, thread)) for thread in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        lab.assert_consistent()
