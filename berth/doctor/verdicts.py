"""A check's verdict and its one line of output. Pure logic."""

from __future__ import annotations

from dataclasses import dataclass

PASS, FAIL, SKIP, WAIT = "PASS", "FAIL", "SKIP", "WAIT"
# SKIP: the feature is not configured (or does not apply); WAIT: nothing to judge yet, ask again
# later. Neither is a failure: only FAIL makes `berth doctor` exit non-zero.


@dataclass(frozen=True)
class Verdict:
    check: str
    status: str
    evidence: str  # what was seen
    fix: str = ""  # what to do, when it failed

    def line(self, width: int = 16) -> str:
        text = f"{self.status} {self.check:<{width}} {_one_line(self.evidence)}"
        return f"{text} | fix: {_one_line(self.fix)}" if self.fix else text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def passed(check: str, evidence: str) -> Verdict:
    return Verdict(check, PASS, evidence)


def failed(check: str, evidence: str, fix: str) -> Verdict:
    return Verdict(check, FAIL, evidence, fix)


def skipped(check: str, why: str) -> Verdict:
    return Verdict(check, SKIP, why)


def waiting(check: str, why: str, then: str) -> Verdict:
    return Verdict(check, WAIT, why, then)


def exit_status(verdicts: list[Verdict]) -> int:
    return 1 if any(v.status == FAIL for v in verdicts) else 0
