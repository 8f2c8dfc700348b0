"""The audit's rules (chalicelib/lifecycle/consistency.py) over hand-made snapshots: a
consistent registry passes, and each way of breaking it is found, once, as what it is."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chalicelib.lifecycle import consistency as rules
from chalicelib.lifecycle.consistency import OpenMultipart, Snapshot, StoredManifest, StoredObject
from chalicelib.uploads.state import Piece, UploadState

NOW = 1_000_000.0
CUTOFF = NOW - 3600
OLD, NEW = CUTOFF - 1, CUTOFF + 1
REPO = "team/app"
LAYER, CONFIG, IMAGE = "sha256:" + "1" * 64, "sha256:" + "2" * 64, "sha256:" + "3" * 64


def blob(digest: str, key: str, size: int, refs: int = 1, **extra: Any) -> dict[str, Any]:
    return {"pk": f"blob#{digest}", "sk": "blob", "key": key, "size": size, "refs": refs, "repos": {REPO}, **extra}


def healthy() -> Snapshot:
    """One image (a config and a layer) tagged `1`, and an upload in progress of one piece."""
    upload = UploadState(uuid="u1", repo=REPO, offset=3, pieces=(Piece("blobs/u1.0.x", 3),))
    return Snapshot(
        blobs=[blob(LAYER, "blobs/a", 10), blob(CONFIG, "blobs/b", 2)],
        tags=[(REPO, "1", IMAGE)],
        manifests=[StoredManifest(REPO, IMAGE, (CONFIG, LAYER, LAYER))],
        links=[(REPO, LAYER, "blobs/a"), (REPO, CONFIG, "blobs/b")],
        uploads=[upload],
        objects={"blobs/a": StoredObject(10, OLD), "blobs/b": StoredObject(2, OLD),
                 "blobs/u1.0.x": StoredObject(3, OLD)},
        multipart=[],
    )


def kinds(snapshot: Snapshot) -> list[tuple[str, str]]:
    return [(f.kind, f.subject) for f in rules.check(snapshot, CUTOFF)]


def test_a_consistent_registry_passes() -> None:
    assert kinds(healthy()) == []


def test_a_tag_naming_a_manifest_the_repository_lacks() -> None:
    snapshot = replace(healthy(), tags=[(REPO, "1", IMAGE), (REPO, "gone", "sha256:" + "9" * 64)])
    assert kinds(snapshot) == [(rules.DANGLING_TAG, f"{REPO}:gone")]


def test_a_manifest_whose_blob_is_gone_or_being_collected() -> None:
    snapshot = healthy()
    snapshot.blobs[0]["doomed"] = 5  # the layer, with its links already gone
    snapshot.links.pop(0)
    found = kinds(snapshot)
    assert (rules.MISSING_BLOB, f"{REPO}@{IMAGE}") in found and (rules.HALF_REMOVED, LAYER) in found
    assert len(found) == 2


def test_a_manifest_whose_blob_is_not_linked_in_its_repository() -> None:
    snapshot = replace(healthy(), links=[(REPO, CONFIG, "blobs/b")])
    [finding] = rules.check(snapshot, CUTOFF)
    assert finding.kind == rules.UNLINKED_BLOB
    assert finding.facts == {"repo": REPO, "digest": LAYER, "key": "blobs/a", "size": 10}


def test_reference_counts_count_each_manifest_once_per_blob() -> None:
    snapshot = healthy()
    snapshot.blobs[0]["refs"] = 2  # the layer is listed twice, by one manifest
    [finding] = rules.check(snapshot, CUTOFF)
    assert (finding.kind, finding.facts) == (rules.WRONG_COUNT, {"digest": LAYER, "seen": 2, "counted": 1})
    snapshot.blobs[0]["refs"] = 0
    assert kinds(snapshot) == [(rules.WRONG_COUNT, LAYER)]
    del snapshot.blobs[0]["refs"]  # a record from before counting: its references are unknown
    assert kinds(snapshot) == []


def test_links_to_no_blob_to_another_copy_or_unlisted() -> None:
    snapshot = healthy()
    other = "sha256:" + "4" * 64
    snapshot.links.append((REPO, other, "blobs/z"))
    snapshot.links.append(("mirror/app", LAYER, "blobs/old-copy"))
    snapshot.links.append(("mirror/app", CONFIG, "blobs/b"))
    assert kinds(snapshot) == [(rules.DANGLING_LINK, f"{REPO}@{other}"), (rules.STALE_LINK, f"mirror/app@{LAYER}"),
                               (rules.UNTRACKED_LINK, f"mirror/app@{CONFIG}")]


def test_a_record_whose_object_is_missing_or_of_another_size() -> None:
    snapshot = healthy()
    del snapshot.objects["blobs/a"]
    snapshot.objects["blobs/b"] = StoredObject(3, OLD)
    assert kinds(snapshot) == [(rules.MISSING_OBJECT, LAYER), (rules.MISSING_OBJECT, CONFIG)]


def test_a_large_manifest_whose_body_is_gone_and_one_that_does_not_parse() -> None:
    snapshot = replace(healthy(), manifests=[StoredManifest(REPO, IMAGE, (CONFIG, LAYER), "manifests/x"),
                                             StoredManifest("other/app", IMAGE, None)])
    found = kinds(snapshot)
    assert (rules.MISSING_OBJECT, f"{REPO}@{IMAGE}") in found
    assert (rules.UNREADABLE_MANIFEST, f"other/app@{IMAGE}") in found


def test_objects_and_multipart_uploads_nothing_names_are_orphans_once_past_the_grace_period() -> None:
    snapshot = healthy()
    snapshot.objects.update({"blobs/u9.0.x": StoredObject(5, OLD), "blobs/u8.0.x": StoredObject(5, NEW),
                             "elsewhere/x": StoredObject(1, OLD)})
    snapshot.multipart.extend([OpenMultipart("blobs/u7", "m7", OLD), OpenMultipart("blobs/u6", "m6", NEW)])
    assert kinds(snapshot) == [(rules.ORPHAN_OBJECT, "blobs/u9.0.x"), (rules.ORPHAN_MULTIPART, "blobs/u7")]


def test_what_uploads_in_progress_name_is_theirs_and_must_exist() -> None:
    snapshot = healthy()
    live = UploadState(uuid="u2", repo=REPO, offset=8, multipart_id="m2", pieces=(Piece("blobs/u2.5.y", 3),))
    snapshot.uploads.append(live)
    snapshot.objects["blobs/u2"] = StoredObject(8, OLD)  # assembled by a finish that died
    snapshot.multipart.append(OpenMultipart("blobs/u2", "m2", OLD))
    assert kinds(snapshot) == [(rules.BROKEN_UPLOAD, "upload u2")]  # its piece is missing
    snapshot.objects["blobs/u2.5.y"] = StoredObject(3, OLD)
    assert kinds(snapshot) == []
    snapshot.multipart.clear()
    assert kinds(snapshot) == [(rules.BROKEN_UPLOAD, "upload u2")]
    snapshot.uploads[-1] = replace(live, finishing=IMAGE)  # a finish completed it, then died
    assert kinds(snapshot) == []
