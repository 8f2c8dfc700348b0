"""The figures issue 7 sets goals for (the chunked path's as issue 14 restated it), and whether
this run met them. Printed, never asserted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.coldstart import ColdStart
from bench.floor import floor
from bench.operations import CHUNK, OperationResult


@dataclass(frozen=True)
class Goal:
    key: str
    figure: str
    limit: float
    unit: str
    note: str = ""  # printed beside a miss: what bounds the figure

    def text(self) -> str:
        limit = f"{self.limit:g}" if self.unit != "x" else f"{self.limit:.2f}"
        return f"<= {limit} {self.unit}".rstrip()


GOALS: tuple[Goal, ...] = (
    Goal("manifest_get_tag_calls", "manifest GET by tag", 1, "AWS calls"),
    Goal("blob_get_calls", "blob GET", 1, "AWS calls"),
    Goal("blob_head_calls", "blob HEAD", 1, "AWS calls"),
    Goal("pull_calls", "pull of a 3-layer image", 5, "AWS calls"),
    Goal("push_calls", "push of a 3-layer image", 30, "AWS calls"),
    # What the platform allows: no arrangement of pieces and parts writes less for these chunks.
    Goal("chunked_written", "S3 bytes written per byte pushed, multipart (chunked) path", floor(CHUNK), "x",
         note="the floor bench/floor.py proves for these chunks on a long upload"),
    Goal("direct_written", "S3 bytes written per byte pushed, direct path", 1.0, "x"),
    Goal("cold_import_ms", "cold import of the handler module (median)", 150, "ms"),
)

# Which operation row each goal reads, and which figure of it.
_FROM_OPERATION = {
    "manifest_get_tag_calls": ("manifest_get_tag", "calls_per_op"),
    "blob_get_calls": ("blob_get", "calls_per_op"),
    "blob_head_calls": ("blob_head", "calls_per_op"),
    "pull_calls": ("pull_image", "calls_per_op"),
    "push_calls": ("push_image", "calls_per_op"),
    "chunked_written": ("chunked_push", "written_per_pushed"),
    "direct_written": ("direct_push", "written_per_pushed"),
}


def goal_for(operation_key: str) -> Goal | None:
    """The goal an operation row is printed beside."""
    for goal in GOALS:
        source = _FROM_OPERATION.get(goal.key)
        if source and source[0] == operation_key:
            return goal
    return None


@dataclass(frozen=True)
class Verdict:
    goal: Goal
    value: float | None  # None: not measurable yet (the path does not exist)

    @property
    def status(self) -> str:
        if self.value is None:
            return "pending"
        return "met" if self.value <= self.goal.limit + 1e-9 else "MISSED"

    def as_json(self) -> dict[str, Any]:
        return {"goal": self.goal.key, "figure": self.goal.figure, "limit": self.goal.limit,
                "unit": self.goal.unit, "value": self.value, "status": self.status}


def verdicts(operations: Mapping[str, OperationResult], cold: ColdStart | None) -> list[Verdict]:
    found = []
    for goal in GOALS:
        value: float | None = None
        if goal.key == "cold_import_ms":
            value = cold.import_median_ms if cold else None
        else:
            key, attribute = _FROM_OPERATION[goal.key]
            result = operations.get(key)
            if result is not None and result.pending is None:
                value = getattr(result, attribute)
        found.append(Verdict(goal, value))
    return found
