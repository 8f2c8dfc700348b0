"""Which blob records the collector may remove and which uploads the purge may drop. Pure
logic; the store re-checks the same conditions atomically when it acts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def blob_collectible(item: Mapping[str, Any], cutoff: int, pending: int = 0) -> bool:
    """No manifest counts the blob (after the `pending` count-outs a dry run foresees), and
    nothing stored, linked or counted it since `cutoff`. A record without a count or a touch
    time (written before counting existed) is never collected: its references are unknown."""
    refs, touched = item.get("refs"), item.get("touched")
    return refs is not None and touched is not None and refs - pending == 0 and touched < cutoff


def upload_abandoned(item: Mapping[str, Any], cutoff: int) -> bool:
    """No chunk committed since `cutoff`."""
    return int(item.get("touched", item["created"])) < cutoff
