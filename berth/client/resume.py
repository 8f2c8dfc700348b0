"""Where interrupted uploads continue: a small file per unfinished upload, mapping
destination + digest to the registry's upload location, so that running the same push again
sends only what the registry does not hold yet."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path


def default_directory() -> Path:
    """`$XDG_CACHE_HOME/berth/uploads`, or `~/.cache/berth/uploads`."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "berth" / "uploads"


@dataclass(frozen=True)
class Resumable:
    location: str
    mode: str  # "direct" (parts to S3) or "chunked" (PATCH)


class ResumeStore:
    """One JSON file per unfinished upload under `directory` (created on first use, private to
    the user: an upload location lets whoever holds push access continue the upload)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_directory()

    def _path(self, registry: str, repository: str, digest: str) -> Path:
        key = f"{registry}/{repository}@{digest}"
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.json"

    def get(self, registry: str, repository: str, digest: str) -> Resumable | None:
        try:
            doc = json.loads(self._path(registry, repository, digest).read_text())
            return Resumable(str(doc["location"]), str(doc["mode"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, registry: str, repository: str, digest: str, state: Resumable) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(registry, repository, digest)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        doc = {"registry": registry, "repository": repository, "digest": digest,
               "location": state.location, "mode": state.mode, "saved": int(time.time())}
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(doc, out)
        temporary.replace(path)  # atomic: a concurrent reader sees the old file or the new one

    def forget(self, registry: str, repository: str, digest: str) -> None:
        self._path(registry, repository, digest).unlink(missing_ok=True)
