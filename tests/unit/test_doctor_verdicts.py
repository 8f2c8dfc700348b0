"""`berth doctor`'s output: one line per verdict, evidence and the fix on it, and an exit
status that only a failure makes non-zero."""

from berth.doctor.verdicts import exit_status, failed, passed, skipped, waiting


def test_each_verdict_is_one_line_with_its_evidence_and_fix() -> None:
    verdict = failed("chunked-patch", "PATCH answered\n  400", "push through\nberth relay")
    assert verdict.line() == "FAIL chunked-patch    PATCH answered 400 | fix: push through berth relay"
    assert passed("auth", "401, then 200").line() == "PASS auth             401, then 200"


def test_only_a_failure_fails_the_run() -> None:
    assert exit_status([passed("a", "x"), skipped("b", "not configured"), waiting("c", "none yet", "later")]) == 0
    assert exit_status([passed("a", "x"), failed("b", "y", "z")]) == 1
