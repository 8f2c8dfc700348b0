"""What the lifecycle jobs read and write beyond the registry's own requests: scans of the
table, the collector's removal of blobs, conditional tag expiry, and the collector's lease
and checkpoint (item `lifecycle`/`gc`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chalicelib.storage.dynamo import CATALOG, TOMBSTONE, MetadataStore, blob_pk, repo_pk, tag_sk
from chalicelib.storage.records import ManifestRecord
from chalicelib.storage.table import from_item, to_item

# Everything the jobs look at, and nothing else: manifest bodies stay out of scans.
_SCANNED = ("pk", "sk", "key", "size", "refs", "touched", "doomed", "repos", "body_key", "repo", "offset",
            "multipart_id", "parts", "pieces", "created", "updated", "direct")
_STATE_KEY = {"pk": "lifecycle", "sk": "gc"}


class HousekeepingStore(MetadataStore):

    # ---- scans ---------------------------------------------------------------------------

    def scan(self, prefixes: tuple[str, ...], start: dict[str, str] | None = None,
             page_size: int = 500) -> Iterator[tuple[list[dict[str, Any]], dict[str, str] | None]]:
        """Table._scan of what the jobs look at."""
        return self._scan(prefixes, _SCANNED, start, page_size)

    def repositories(self, after: str | None = None) -> Iterator[str]:
        start = repo_pk(after) if after is not None else None
        for item in self._query(CATALOG, "repo#", exclusive_start=start, projection="sk"):
            yield item["sk"].split("#", 1)[1]

    def tags(self, repo: str) -> list[tuple[str, str, int]]:
        """(tag, digest, last push) of every tag of the repository."""
        items = self._query(repo_pk(repo), "tag#", projection="sk, digest, created")
        return [(item["sk"].rsplit("#", 1)[1], item["digest"], item["created"]) for item in items]

    def manifests(self, repo: str) -> list[ManifestRecord]:
        return [self._manifest(item) for item in self._query(repo_pk(repo), "manifest#")]

    # ---- retention -----------------------------------------------------------------------

    def expire_tag(self, repo: str, tag: str, digest: str, pushed: int) -> bool:
        """Delete the tag unless it was pushed again since the collector read it."""
        return self._conditionally(
            "delete_item", Key=to_item({"pk": repo_pk(repo), "sk": tag_sk(tag)}),
            ConditionExpression="#digest = :digest AND #created = :pushed",
            ExpressionAttributeNames={"#digest": "digest", "#created": "created"},
            ExpressionAttributeValues=to_item({":digest": digest, ":pushed": pushed}))

    # ---- blob removal --------------------------------------------------------------------

    def doom(self, digest: str, cutoff: int, now: int) -> dict[str, Any] | None:
        """Mark an unreferenced blob untouched since `cutoff` as being removed, atomically with
        that check. From then on nothing counts, links or mounts it, and a new push of the same
        digest replaces the record. Returns the marked record (its key and `repos` are final),
        or None when the blob is in use after all."""
        try:
            result = self._db.update_item(
                TableName=self.table, Key=to_item({"pk": blob_pk(digest), "sk": "blob"}),
                UpdateExpression="SET doomed = :now",
                ConditionExpression="refs = :zero AND touched < :cutoff AND attribute_not_exists(doomed)",
                ExpressionAttributeValues=to_item({":now": now, ":zero": 0, ":cutoff": cutoff}),
                ReturnValues="ALL_NEW")
        except (self._db.exceptions.ConditionalCheckFailedException,
                self._db.exceptions.TransactionConflictException):
            return None  # counted, touched, or written by a transaction right now: in use
        return from_item(result["Attributes"])

    def unlink_doomed(self, repo: str, digest: str, key: str) -> bool:
        """Remove a link to a copy being removed; a link a newer push made (another key) stays."""
        return self._conditionally(
            "delete_item", Key=to_item({"pk": repo_pk(repo), "sk": f"link#{digest}"}),
            ConditionExpression="#key = :key", ExpressionAttributeNames={"#key": "key"},
            ExpressionAttributeValues=to_item({":key": key}))

    def forget_removed(self, item: dict[str, Any]) -> bool:
        """Once its links and bytes are gone: delete the tombstone, or the doomed record unless
        a newer push took it over (that push left a tombstone, which goes next time)."""
        if item["pk"].startswith(TOMBSTONE):
            return self._delete_existing(item["pk"], item["sk"])
        return self._conditionally(
            "delete_item", Key=to_item({"pk": item["pk"], "sk": "blob"}),
            ConditionExpression="attribute_exists(doomed) AND #key = :key", ExpressionAttributeNames={"#key": "key"},
            ExpressionAttributeValues=to_item({":key": item["key"]}))

    # ---- the collector's lease and checkpoint --------------------------------------------

    def gc_state(self) -> dict[str, Any]:
        return self._get(_STATE_KEY["pk"], _STATE_KEY["sk"]) or {}

    def claim(self, owner: str, now: int, until: int) -> dict[str, Any] | None:
        """Take (or renew) the collector's lease; the state item, or None while another holds it."""
        try:
            result = self._db.update_item(
                TableName=self.table, Key=to_item(_STATE_KEY),
                UpdateExpression="SET lease_owner = :owner, lease_until = :until",
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now OR lease_owner = :owner",
                ExpressionAttributeValues=to_item({":owner": owner, ":until": until, ":now": now}),
                ReturnValues="ALL_NEW")
        except self._db.exceptions.ConditionalCheckFailedException:
            return None
        return from_item(result["Attributes"])

    def save_run(self, owner: str, run: dict[str, Any], until: int) -> bool:
        """Checkpoint the run and extend the lease; False when the lease was lost."""
        return self._conditionally(
            "update_item", Key=to_item(_STATE_KEY), UpdateExpression="SET run = :run, lease_until = :until",
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeValues=to_item({":run": run, ":until": until, ":owner": owner}))

    def release(self, owner: str, finished: int | None = None) -> None:
        """Give the lease up; with `finished`, the run is complete and its checkpoint goes."""
        expression = "REMOVE lease_owner, lease_until"
        values: dict[str, Any] = {":owner": owner}
        if finished is not None:
            expression = "SET last_finished = :finished REMOVE lease_owner, lease_until, run"
            values[":finished"] = finished
        self._conditionally("update_item", Key=to_item(_STATE_KEY), UpdateExpression=expression,
                            ConditionExpression="lease_owner = :owner", ExpressionAttributeValues=to_item(values))
