from chalicelib.lifecycle.stats import tally
from chalicelib.lifecycle.sweep import blob_collectible, upload_abandoned

CUTOFF = 1_000


def test_blob_collectible_needs_no_references_and_no_touch_since_the_cutoff() -> None:
    assert blob_collectible({"refs": 0, "touched": CUTOFF - 1}, CUTOFF)
    assert not blob_collectible({"refs": 0, "touched": CUTOFF}, CUTOFF)  # touched at the cutoff: kept
    assert not blob_collectible({"refs": 1, "touched": 0}, CUTOFF)
    # Records from before reference counting: their references are unknown.
    assert not blob_collectible({"touched": 0}, CUTOFF)
    assert not blob_collectible({"refs": 0}, CUTOFF)
    # A negative count is a bug somewhere: never a reason to delete.
    assert not blob_collectible({"refs": -1, "touched": 0}, CUTOFF)


def test_dry_run_pending_count_outs_make_a_blob_collectible() -> None:
    assert blob_collectible({"refs": 2, "touched": 0}, CUTOFF, pending=2)
    assert not blob_collectible({"refs": 2, "touched": 0}, CUTOFF, pending=1)


def test_upload_abandoned_by_its_last_commit() -> None:
    assert upload_abandoned({"created": 0, "touched": CUTOFF - 1}, CUTOFF)
    assert not upload_abandoned({"created": 0, "touched": CUTOFF}, CUTOFF)
    assert upload_abandoned({"created": CUTOFF - 1}, CUTOFF)


def test_tally_counts_each_kind_and_what_is_reclaimable() -> None:
    items = [
        {"pk": "catalog", "sk": "repo#a"}, {"pk": "catalog", "sk": "repo#b"},
        {"pk": "repo#a", "sk": "tag#x#x"}, {"pk": "repo#a", "sk": "link#sha256:1"},
        {"pk": "repo#a", "sk": "manifest#sha256:m", "size": 10},
        {"pk": "repo#a", "sk": "manifest#sha256:big", "size": 300_000, "body_key": "manifests/sha256/big.1"},
        {"pk": "blob#sha256:1", "sk": "blob", "size": 100, "refs": 1, "touched": 0},
        {"pk": "blob#sha256:2", "sk": "blob", "size": 20, "refs": 0, "touched": CUTOFF - 1},
        {"pk": "blob#sha256:3", "sk": "blob", "size": 3, "refs": 0, "touched": CUTOFF},
        {"pk": "blob#sha256:4", "sk": "blob", "size": 4, "refs": 0, "touched": CUTOFF, "doomed": CUTOFF},
        {"pk": "doomed#sha256:1", "sk": "blobs/old", "key": "blobs/old", "size": 50},  # an old copy of blob 1
        {"pk": "upload#u1", "sk": "upload", "offset": 7, "created": 0, "touched": 0},
        {"pk": "upload#u2", "sk": "upload", "offset": 5, "created": 0, "touched": CUTOFF},
        {"pk": "account", "sk": "user#someone"},
    ]
    stats = tally(items, gc_cutoff=CUTOFF, upload_cutoff=CUTOFF)
    assert (stats.repositories, stats.tags, stats.manifests, stats.blobs, stats.uploads) == (2, 1, 2, 4, 2)
    assert stats.bytes_stored == 127 + 50 + 300_000 + 12
    assert (stats.unreferenced_blobs, stats.unreferenced_bytes) == (4, 77)
    assert (stats.collectible_blobs, stats.collectible_bytes) == (3, 74)  # blob 2, doomed blob 4, the old copy
    assert (stats.abandoned_uploads, stats.abandoned_bytes) == (1, 7)
    assert stats.bytes_reclaimable == 84
