"""`berth doctor`'s output: one line per verdict, evidence and the fix on it, and an exit
status that only a failure makes non-zero."""

from typing import Any

from berth.client import RegistryClient
from berth.doctor.checks import Doctor, events, resumable_sha256, schedules
from berth.doctor.verdicts import Verdict, exit_status, failed, passed, skipped, waiting


def test_each_verdict_is_one_line_with_its_evidence_and_fix() -> None:
    verdict = failed("chunked-patch", "PATCH answered\n  400", "push through\nberth relay")
    assert verdict.line() == "FAIL chunked-patch    PATCH answered 400 | fix: push through berth relay"
    assert passed("auth", "401, then 200").line() == "PASS auth             401, then 200"


def test_only_a_failure_fails_the_run() -> None:
    assert exit_status([passed("a", "x"), skipped("b", "not configured"), waiting("c", "none yet", "later")]) == 0
    assert exit_status([passed("a", "x"), failed("b", "y", "z")]) == 1


# ---- verdicts drawn from the registry's report ----------------------------------------------

NOW = 1_700_000_000


def judged(check: Any, report: dict[str, Any]) -> Verdict:
    doctor = Doctor(RegistryClient("127.0.0.1:9"), "berth-doctor")
    doctor._report = {"now": NOW, **report}
    return check(doctor)  # type: ignore[no-any-return]


def runs(**functions: dict[str, Any]) -> dict[str, Any]:
    return {"schedules": {name: {"period": 3600, **run} for name, run in functions.items()}}


def test_schedules_pass_when_each_ended_well_within_two_periods() -> None:
    verdict = judged(schedules, runs(purge={"ran": True, "started": NOW - 700, "finished": NOW - 600},
                                     collect={"ran": True, "started": NOW - 4000, "finished": NOW - 3900}))
    assert verdict.status == "PASS" and "purge: last ended 600 s ago" in verdict.evidence


def test_schedules_wait_for_a_first_run_and_for_one_running_now() -> None:
    assert judged(schedules, runs(purge={"ran": False})).status == "WAIT"
    running = judged(schedules, runs(purge={"ran": True, "started": NOW - 30, "finished": NOW - 3600}))
    assert running.status == "WAIT" and "not finished" in running.evidence and "again later" in running.fix


def test_schedules_fail_on_a_failed_stale_or_cut_off_run() -> None:
    failed_run = judged(schedules, runs(purge={"ran": True, "started": NOW - 60, "finished": NOW - 50,
                                               "failed": "ClientError"}))
    assert failed_run.status == "FAIL" and "ClientError" in failed_run.evidence and "logs of purge" in failed_run.fix
    assert judged(schedules, runs(purge={"ran": True, "started": NOW - 9000, "finished": NOW - 8000})).status == "FAIL"
    assert judged(schedules, runs(purge={"ran": True, "started": NOW - 2000, "finished": None})).status == "FAIL"


def test_events_and_hashing_verdicts() -> None:
    assert judged(events, {"events": {"configured": False}}).status == "SKIP"
    refused = judged(events, {"events": {"configured": True, "accepted": False, "error": "ResourceNotFoundException"}})
    assert refused.status == "FAIL" and "ResourceNotFoundException" in refused.evidence
    runtime = {"python": "3.13.1", "architecture": "aarch64", "initialization": "snap-start"}
    hashing = judged(resumable_sha256, {"runtime": {**runtime, "resumable_sha256": True}})
    assert hashing.status == "PASS" and "aarch64, started snap-start" in hashing.evidence
    assert judged(resumable_sha256, {"runtime": {**runtime, "resumable_sha256": False}}).status == "FAIL"
