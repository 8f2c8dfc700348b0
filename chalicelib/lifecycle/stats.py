"""What the table says is stored and what could be freed. Pure logic over scanned items."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.lifecycle.sweep import blob_collectible, upload_abandoned
from chalicelib.storage.keys import TOMBSTONE


@dataclass
class Stats:
    repositories: int = 0
    tags: int = 0
    manifests: int = 0
    manifest_bytes: int = 0  # bodies too large for the table, in S3
    blobs: int = 0
    blob_bytes: int = 0
    uploads: int = 0
    upload_bytes: int = 0
    unreferenced_blobs: int = 0  # no manifest counts them
    unreferenced_bytes: int = 0
    collectible_blobs: int = 0  # of those, past the grace period: the next collection frees them
    collectible_bytes: int = 0
    abandoned_uploads: int = 0  # the next purge drops them
    abandoned_bytes: int = 0

    @property
    def bytes_stored(self) -> int:
        return self.blob_bytes + self.manifest_bytes + self.upload_bytes

    @property
    def bytes_reclaimable(self) -> int:
        return self.unreferenced_bytes + self.abandoned_bytes

    def add(self, item: Mapping[str, Any], gc_cutoff: int, upload_cutoff: int) -> None:
        pk, sk = item["pk"], item["sk"]
        if pk == "catalog":
            self.repositories += 1
        elif pk.startswith("repo#") and sk.startswith("tag#"):
            self.tags += 1
        elif pk.startswith("repo#") and sk.startswith("manifest#"):
            self.manifests += 1
            if item.get("body_key"):
                self.manifest_bytes += int(item["size"])
        elif pk.startswith(TOMBSTONE):
            # A copy half-removed by an interrupted collection: the next one deletes it.
            self._stored_blob(int(item["size"]), unreferenced=True, collectible=True)
        elif pk.startswith("blob#"):
            self.blobs += 1
            self._stored_blob(int(item["size"]), unreferenced=item.get("refs") == 0,
                              collectible=blob_collectible(item, gc_cutoff) or "doomed" in item)
        elif pk.startswith("upload#"):
            size = int(item["offset"])
            self.uploads += 1
            self.upload_bytes += size
            if upload_abandoned(item, upload_cutoff):
                self.abandoned_uploads += 1
                self.abandoned_bytes += size


    def _stored_blob(self, size: int, unreferenced: bool, collectible: bool) -> None:
        self.blob_bytes += size
        if unreferenced:
            self.unreferenced_blobs += 1
            self.unreferenced_bytes += size
        if collectible:
            self.collectible_blobs += 1
            self.collectible_bytes += size


def tally(items: Iterable[Mapping[str, Any]], gc_cutoff: int, upload_cutoff: int) -> Stats:
    stats = Stats()
    for item in items:
        stats.add(item, gc_cutoff, upload_cutoff)
    return stats
