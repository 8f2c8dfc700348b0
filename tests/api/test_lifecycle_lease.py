"""The collector's lease: short, renewed by heartbeats while a run goes on, and breakable
(`berth gc --break-lease`) once its holder stopped heartbeating."""

from __future__ import annotations

import time

import pytest

from berth.cli import main
from chalicelib.lifecycle.collector import HEARTBEAT_SECONDS, LEASE_SECONDS, SILENT_SECONDS, Busy
from tests.api.lifecycle_support import Lab

REPO = "team/app"


@pytest.fixture
def lab(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Lab:
    monkeypatch.delenv("BERTH_GC_GRACE_HOURS", raising=False)  # `--grace-hours` sets it: gone after the test
    return lab


def killed_collection(lab: Lab, silent: int) -> None:
    """A collection that took the lease, heartbeated `silent` seconds ago, and was killed."""
    then = int(time.time()) - silent
    assert lab.jobs.store.claim("killed", then, then + LEASE_SECONDS) is not None


def gc(lab: Lab, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = main(["gc", *args, "--table", lab.table, "--bucket", lab.bucket, "--region", "us-east-1"])
    return status, capsys.readouterr().out


def test_a_killed_collection_blocks_the_next_for_at_most_a_lease(lab: Lab) -> None:
    killed_collection(lab, silent=0)
    with pytest.raises(Busy) as refused:
        lab.collect()
    assert refused.value.holder is not None and refused.value.holder.owner == "killed"
    lab.clock.later((LEASE_SECONDS + 1) / 3600)
    assert lab.collect().complete


def test_break_lease_takes_over_a_silent_collection_at_once(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    lab.configure(gc_grace_hours=0)
    orphan = lab.push_blob(REPO, b"orphan")
    time.sleep(1.1)  # the command's clock is the real one: "before the cutoff" then holds with no grace
    killed_collection(lab, silent=SILENT_SECONDS + 1)
    status, out = gc(lab, capsys, "-q", "--grace-hours", "0")
    assert status == 1 and "another collection is running" in out  # without the flag: refused
    status, out = gc(lab, capsys, "--break-lease", "--grace-hours", "0")
    assert status == 0 and "took over the lease of collection killed" in out, out
    assert lab.blob_item(orphan) is None and "lease_owner" not in lab.jobs.store.gc_state()


def test_break_lease_leaves_a_heartbeating_collection_alone_unless_confirmed(
        lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    killed_collection(lab, silent=HEARTBEAT_SECONDS // 2)
    status, out = gc(lab, capsys, "--break-lease")  # no terminal to ask on: no
    assert status == 1 and "probably still running" in out and "lease left alone" in out
    assert lab.jobs.store.gc_state()["lease_owner"] == "killed"
    with pytest.raises(Busy):
        lab.collector().break_lease()
    assert lab.collector().break_lease(force=True) is not None  # what confirming at the prompt does
    assert lab.collect().complete


def test_a_long_run_keeps_its_lease_by_heartbeating(lab: Lab) -> None:
    """A run lasting several leases: every blob takes a minute of the clock, and another
    collection trying to start in between is refused each time."""
    lab.configure(gc_grace_hours=0)
    for i in range(5):
        lab.push_blob(REPO, f"orphan {i}".encode())
    lab.clock.later(1)
    refused: list[bool] = []

    def slowly(line: str) -> None:
        lab.clock.later(60 / 3600)
        now = int(lab.clock())
        refused.append(lab.jobs.store.claim("another", now, now + LEASE_SECONDS) is None)

    collector = lab.jobs.collector(slowly)
    run = collector.run(lambda: False)
    assert run.complete and run.blobs == 5 and len(refused) == 5 and all(refused)
    assert LEASE_SECONDS < 5 * 60
