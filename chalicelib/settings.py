"""Configuration, read once from the environment (set per stage in .chalice/config.json)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    bucket: str
    table: str
    region: str | None
    presign_seconds: int

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            bucket=os.environ.get("BERTH_BUCKET", "berth-blobs"),
            table=os.environ.get("BERTH_TABLE", "berth"),
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
            presign_seconds=int(os.environ.get("BERTH_PRESIGN_SECONDS", "900")),
        )
