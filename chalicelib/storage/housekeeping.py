"""What the lifecycle jobs read and write beyond the registry's own requests: the sweep
index's candidates (blobs that may be unreferenced, uploads idle long enough), the
collector's removal of blobs, conditional tag expiry, the collector's lease and checkpoint
(item `lifecycle`/`gc`), and a scan of the whole table for `berth stats`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chalicelib.storage.dynamo import MetadataStore
from chalicelib.storage.keys import (
    CATALOG,
    SWEEP_INDEX,
    TOMBSTONE,
    blob_pk,
    link_sk,
    repo_pk,
    sweep_shards,
    tag_sk,
    upload_pk,
)
from chalicelib.storage.manifests import manifest_record
from chalicelib.storage.records import ManifestRecord
from chalicelib.storage.table import from_item, to_item

# What `berth stats` tallies (lifecycle/stats.py), and nothing else: manifest bodies and
# uploads' part and piece lists stay out of the scan.
_SCANNED = ("pk", "sk", "size", "refs", "touched", "doomed", "body_key", "offset", "created")
_STATE_KEY = {"pk": "lifecycle", "sk": "gc"}
_PURGE_KEY = {"pk": "lifecycle", "sk": "purge"}


class HousekeepingStore(MetadataStore):

    # ---- the sweep index -----------------------------------------------------------------

    def candidates(self, kind: str, before: int, start: dict[str, Any] | None = None,
                   page_size: int = 500) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
        """Pages of the items of `kind` in the sweep index ("blob": blob records that may have
        no reference, tombstones; "upload": upload records) touched before `before`, each with
        the position after it (None after the last page), from which a later call resumes.
        What is touched since is not read: a run costs what became garbage, not what is stored."""
        shards = sweep_shards(kind)
        for index in range(shards.index(start["shard"]) if start else 0, len(shards)):
            kwargs: dict[str, Any] = {
                "TableName": self.table, "IndexName": SWEEP_INDEX, "Limit": page_size,
                "KeyConditionExpression": "sweep = :shard AND touched < :before",
                "ExpressionAttributeValues": to_item({":shard": shards[index], ":before": before}),
            }
            if start and start["shard"] == shards[index] and start.get("after"):
                kwargs["ExclusiveStartKey"] = to_item(start["after"])
            while True:
                page = self._db.query(**kwargs)
                after = page.get("LastEvaluatedKey")
                position: dict[str, Any] | None = None
                if after is not None:
                    position = {"shard": shards[index], "after": from_item(after)}
                elif index + 1 < len(shards):
                    position = {"shard": shards[index + 1], "after": None}
                yield [from_item(i) for i in page.get("Items", [])], position
                if after is None:
                    break
                kwargs["ExclusiveStartKey"] = after

    def referenced_after_all(self, digest: str) -> bool:
        """Take a blob the index offered out of it, as it has references (counted out by one
        manifest, still counted by another). Conditional: one counted out to none meanwhile stays."""
        return self._conditionally(
            "update_item", Key=to_item({"pk": blob_pk(digest), "sk": "blob"}), UpdateExpression="REMOVE sweep",
            ConditionExpression="refs > :zero AND attribute_not_exists(doomed)",
            ExpressionAttributeValues=to_item({":zero": 0}))

    def blob_items(self, digests: list[str]) -> list[dict[str, Any]]:
        """The blob records of `digests` (those that exist)."""
        return self._batch_get([(blob_pk(d), "blob") for d in digests])

    # ---- orphaned pieces -----------------------------------------------------------------

    def named(self, objects: dict[str, tuple[str, str | None]]) -> set[str]:
        """Which of these objects a record names. Each is a piece key with its upload's uuid
        and, for a first piece (which may have become a blob as it is), the digest of its
        bytes: named by its upload's `pieces`, by the blob record of that digest, or by a
        tombstone of it (the collector is removing that copy)."""
        wanted: list[tuple[str, str]] = []
        for key, (uuid, digest) in objects.items():
            wanted.append((upload_pk(uuid), "upload"))
            if digest is not None:
                wanted += [(blob_pk(digest), "blob"), (f"{TOMBSTONE}{digest}", key)]
        names: set[str] = set()
        for item in self._batch_get(wanted, "pk, sk, #key, pieces", {"#key": "key"}, consistent=True):
            if item["sk"] == "upload":
                names.update(piece["key"] for piece in item.get("pieces", []))
            else:
                names.add(item["key"])
        return names & set(objects)

    def multipart_named(self, uploads: dict[str, str]) -> set[str]:
        """Which of these S3 multipart upload ids (each with its upload's uuid) that upload's
        record names."""
        items = self._batch_get([(upload_pk(uuid), "upload") for uuid in uploads.values()], "pk, multipart_id",
                                consistent=True)
        named = {item["multipart_id"] for item in items if item.get("multipart_id")}
        return named & set(uploads)

    def bodies_named(self, unsettled: list[dict[str, Any]]) -> set[str]:
        """Which of these unsettled manifest bodies (items from the sweep index) the record
        meant to name each one (its holder) names."""
        wanted = [(item["holder_pk"], item["holder_sk"]) for item in unsettled]
        items = self._batch_get(wanted, "body_key", consistent=True)
        return {item["body_key"] for item in items if item.get("body_key")}

    def pieces_swept(self) -> str | None:
        """The last hour whose pieces the purge has swept."""
        return (self._get(_PURGE_KEY["pk"], _PURGE_KEY["sk"], consistent=True) or {}).get("pieces_swept")

    def mark_pieces_swept(self, hour: str) -> None:
        """Move the mark forward (never back: two purges may run at once)."""
        self._conditionally(
            "update_item", Key=to_item(_PURGE_KEY), UpdateExpression="SET pieces_swept = :hour",
            ConditionExpression="attribute_not_exists(pieces_swept) OR pieces_swept < :hour",
            ExpressionAttributeValues=to_item({":hour": hour}))

    # ---- scans ---------------------------------------------------------------------------

    def scan(self, prefixes: tuple[str, ...], start: dict[str, str] | None = None,
             page_size: int = 500) -> Iterator[tuple[list[dict[str, Any]], dict[str, str] | None]]:
        """Table._scan of what `berth stats` tallies."""
        return self._scan(prefixes, _SCANNED, start, page_size)

    def repositories(self, after: str | None = None) -> Iterator[str]:
        start = repo_pk(after) if after is not None else None
        for item in self._query(CATALOG, "repo#", exclusive_start=start, projection="sk"):
            yield item["sk"].split("#", 1)[1]

    def tags(self, repo: str) -> list[tuple[str, str, int, str]]:
        """(tag, digest, last push, version) of every tag of the repository. Not a consistent
        read: retention acts on what it read only at the version read (expire_tag), and removes
        a manifest only after reading its tags again, consistently."""
        items = self._query(repo_pk(repo), "tag#", projection="sk, digest, created, version")
        return [(item["sk"].rsplit("#", 1)[1], item["digest"], item["created"], item.get("version", ""))
                for item in items]

    def manifests(self, repo: str) -> list[ManifestRecord]:
        return [manifest_record(item) for item in self._query(repo_pk(repo), "manifest#")]

    # ---- retention -----------------------------------------------------------------------

    def expire_tag(self, repo: str, tag: str, version: str) -> bool:
        """Delete the tag unless it was pushed again since the collector read it (every push
        writes a new version)."""
        return self._conditionally(
            "delete_item", Key=to_item({"pk": repo_pk(repo), "sk": tag_sk(tag)}),
            ConditionExpression="#version = :version", ExpressionAttributeNames={"#version": "version"},
            ExpressionAttributeValues=to_item({":version": version}))

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
            "delete_item", Key=to_item({"pk": repo_pk(repo), "sk": link_sk(digest)}),
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
                UpdateExpression="SET lease_owner = :owner, lease_until = :until, heartbeat = :now",
                ConditionExpression="attribute_not_exists(lease_until) OR lease_until < :now OR lease_owner = :owner",
                ExpressionAttributeValues=to_item({":owner": owner, ":until": until, ":now": now}),
                ReturnValues="ALL_NEW")
        except self._db.exceptions.ConditionalCheckFailedException:
            return None
        return from_item(result["Attributes"])

    def save_run(self, owner: str, run: dict[str, Any], now: int, until: int) -> bool:
        """Checkpoint the run and extend the lease (a heartbeat); False when the lease was lost."""
        return self._conditionally(
            "update_item", Key=to_item(_STATE_KEY),
            UpdateExpression="SET run = :run, lease_until = :until, heartbeat = :now",
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeValues=to_item({":run": run, ":until": until, ":now": now, ":owner": owner}))

    def break_lease(self, owner: str, until: int) -> bool:
        """Free the lease `owner` holds, unless it heartbeated since it was read (which moves
        `lease_until`); the checkpoint stays, for the next run to carry on."""
        return self._conditionally(
            "update_item", Key=to_item(_STATE_KEY), UpdateExpression="REMOVE lease_owner, lease_until, heartbeat",
            ConditionExpression="lease_owner = :owner AND lease_until = :until",
            ExpressionAttributeValues=to_item({":owner": owner, ":until": until}))

    def release(self, owner: str, finished: int | None = None) -> None:
        """Give the lease up; with `finished`, the run is complete and its checkpoint goes."""
        expression = "REMOVE lease_owner, lease_until, heartbeat"
        values: dict[str, Any] = {":owner": owner}
        if finished is not None:
            expression = "SET last_finished = :finished REMOVE lease_owner, lease_until, heartbeat, run"
            values[":finished"] = finished
        self._conditionally("update_item", Key=to_item(_STATE_KEY), UpdateExpression=expression,
                            ConditionExpression="lease_owner = :owner", ExpressionAttributeValues=to_item(values))
