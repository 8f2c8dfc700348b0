"""Where the lifecycle jobs start: the scheduled Lambdas, and `berth gc` / `berth stats`
against a stage's table and bucket (here: moto's)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.cli import build_parser
from tests.api.lifecycle_support import Lab, berth
from tests.helpers import digest_of

REPO = "team/app"


@pytest.fixture
def lab(command_lab: Lab) -> Lab:
    return command_lab


def test_gc_and_stats_are_commands() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"gc", "stats"} <= set(commands)


def test_stats_then_gc_dry_run_then_gc(lab: Lab, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lab.push_image(REPO, "v1", [b"kept layer"])
    old, _ = lab.push_image(REPO, "pr-1", [b"pr layer"])
    orphan = lab.push_blob(REPO, b"orphan")
    for digest in (digest_of(b"pr layer"), orphan):
        lab.backdate(f"blob#{digest}", "blob", 2, "touched")
    lab.backdate_tag(REPO, "pr-1", 48)
    lab.backdate_manifest(REPO, old, 48)
    rules = tmp_path / "lifecycle.json"
    rules.write_text(json.dumps({"repositories": [
        {"match": "team/*", "expire_untagged_after_days": 1, "expire_tags": [{"match": "pr-*", "after_days": 1}]}]}))

    status, out = berth(lab, capsys, "stats", "--grace-hours", "1")
    assert status == 0
    assert "repositories         1" in out and "tags                 2" in out
    assert "blobs                4 (26 bytes)" in out  # config (2), two layers (10 + 8), orphan (6)
    assert "bytes reclaimable    6 bytes: 1 unreferenced blobs (6 bytes; 1 past the grace period" in out

    status, out = berth(lab, capsys, "gc", "--dry-run", "--grace-hours", "1", "--lifecycle", str(rules))
    assert status == 0
    assert f"  tag {REPO}:pr-1 ({old})" in out and f"  blob {orphan} (6 bytes)" in out
    assert out.splitlines()[-1] == ("would free: 0 abandoned uploads (0 bytes), 1 tags, 1 manifests, "
                                    "2 blobs (14 bytes); 14 bytes in all")
    assert len(lab.blob_items()) == 4

    status, out = berth(lab, capsys, "gc", "-q", "--grace-hours", "1", "--lifecycle", str(rules))
    assert status == 0
    assert out == "freed: 0 abandoned uploads (0 bytes), 1 tags, 1 manifests, 2 blobs (14 bytes); 14 bytes in all\n"

    status, out = berth(lab, capsys, "stats", "--json")
    stats = json.loads(out)
    assert (stats["tags"], stats["manifests"], stats["blobs"], stats["bytes_stored"]) == (1, 1, 2, 2 + 10)


def test_gc_says_so_when_another_collection_runs(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    now = int(lab.clock())
    lab.jobs.store.claim("the scheduled one", now, now + 600)
    status, out = berth(lab, capsys, "gc")
    assert status == 1 and "another collection is running" in out


class LambdaContext:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


SCHEDULED_EVENT = {"version": "0", "account": "1", "region": "us-east-1", "detail": {},
                   "detail-type": "Scheduled Event", "source": "aws.events", "time": "2025-01-01T00:00:00Z",
                   "id": "1", "resources": []}


def test_scheduled_lambdas_purge_and_collect_within_their_time(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    import app

    lab.configure(gc_grace_hours=0, upload_max_age_hours=0)
    monkeypatch.setattr(app, "housekeeping", lab.jobs)
    response = lab.client.post(f"/v2/{REPO}/blobs/uploads/")
    lab.client.patch(response.header("Location"), body=b"abandoned")
    lab.push_blob(REPO, b"orphan")
    lab.clock.later(1)
    plenty = LambdaContext(remaining_ms=600_000)
    assert app.purge_uploads(SCHEDULED_EVENT, plenty) == {"uploads": 1, "bytes": 9, "complete": True, "pieces": 0,
                                                          "piece_bytes": 0, "multipart": 0, "bodies": 0}
    collected = app.collect_garbage(SCHEDULED_EVENT, plenty)
    assert collected["complete"] and collected["blobs"] == 1
    assert app.collect_garbage(SCHEDULED_EVENT, plenty) == {"status": "not due"}
    # Under a minute left: stop at the first chance, with the checkpoint saved.
    lab.clock.later(25)
    lab.push_blob(REPO, b"another")
    lab.push_blob(REPO, b"and another")
    monkeypatch.setattr(lab.jobs, "collector", lambda: lab.collector(page_size=1))
    assert app.collect_garbage(SCHEDULED_EVENT, LambdaContext(remaining_ms=59_000))["complete"] is False
    assert lab.jobs.store.gc_state()["run"]["phase"] == "sweep"
