"""Part arithmetic for direct uploads: how a blob is cut into S3 multipart parts, and which
parts are missing or wrong. Pure logic."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024
GiB = 1024 * MiB
MIN_PART = 16 * MiB  # big enough to keep request counts low, small enough to parallelise
MAX_PART = 5 * GiB  # S3's limit
# S3 allows 10,000 parts, but the finish lists and names every part inside the API's 29 s
# (bench/completion.py: ~1.3 s per 1,000 parts on moto here). One ListParts page of parts
# keeps that to well under a second; bigger blobs get bigger parts. 1,000 parts of 5 GiB is
# just under S3's largest object (5 TiB).
MAX_PARTS = 1_000
MAX_SIZE = MAX_PARTS * MAX_PART
MAX_URLS = 1000  # part URLs per listing


@dataclass(frozen=True)
class PartPlan:
    size: int
    part_size: int

    @classmethod
    def for_size(cls, size: int) -> PartPlan:
        if size < 1 or size > MAX_SIZE:
            raise ValueError(f"size must be between 1 and {MAX_SIZE} bytes")
        needed = -(-size // MAX_PARTS)  # ceiling division: the smallest part that fits MAX_PARTS parts
        whole_mib = -(-needed // MiB) * MiB
        return cls(size, max(MIN_PART, whole_mib))

    @property
    def count(self) -> int:
        return -(-self.size // self.part_size)

    def part_length(self, number: int) -> int:
        """Bytes in part `number` (1-based): full parts, then the rest."""
        if not 1 <= number <= self.count:
            raise ValueError(f"part numbers run from 1 to {self.count}")
        return min(self.part_size, self.size - (number - 1) * self.part_size)

    def problems(self, uploaded: dict[int, int]) -> dict[str, list[int]]:
        """Parts still missing, of the wrong size, or beyond the blob: empty when complete."""
        wrong = [n for n, length in sorted(uploaded.items()) if n <= self.count and length != self.part_length(n)]
        found: dict[str, list[int]] = {
            "missing": [n for n in range(1, self.count + 1) if n not in uploaded],
            "wrong_size": wrong,
            "extra": sorted(n for n in uploaded if n > self.count),
        }
        return {k: v for k, v in found.items() if v}
