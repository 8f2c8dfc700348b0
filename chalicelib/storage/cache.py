"""The pull-through cache's records, in the registry's table but apart from its own: a cached
repository is not a pushed one, and nothing here is reference-counted. The layout is in
docs/cache.md ("Records"):

- `cache#<repo>`: the cached repository's tags (`tag#<tag>`), manifests (`manifest#<digest>`),
  blob links (`link#<digest>`: the upstream confirmed the blob there) and referrers
  (`referrers#<digest>`), each with `last_pulled` for eviction;
- `cacheblob#<digest>` / `blob`: a blob copied (or being copied) into S3, shared by every
  cached repository, with the copy's progress and lease;
- `cache` / `stats#<day>`: the counters `berth stats` shows; `cache` / `collect`: eviction's
  checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.storage.bodies import Holder, UnsettledBodies
from chalicelib.storage.records import ManifestRecord
from chalicelib.storage.table import from_item, to_item

BLOB_PK = "cacheblob#"
COUNTERS_PK = "cache"
COPYING, DONE, FAILED = "copying", "done", "failed"
_SCANNED = ("pk", "sk", "last_pulled", "state", "key", "size", "body_key", "updated", "multipart_id",
            "lease_until")


def repo_pk(repo: str) -> str:
    return f"cache#{repo}"


def blob_pk(digest: str) -> str:
    return f"{BLOB_PK}{digest}"


@dataclass(frozen=True)
class CachedManifest:
    record: ManifestRecord
    fetched: int  # when the upstream last vouched for it
    last_pulled: int


@dataclass(frozen=True)
class CachedBlob:
    digest: str
    state: str
    key: str
    source_prefix: str  # the rule whose upstream it is copied from
    source_repo: str  # the repository there that holds it
    size: int | None = None
    offset: int = 0  # bytes copied (and hashed) so far
    hash_state: bytes | None = None
    multipart_id: str | None = None
    parts: tuple[int, ...] = ()
    lease_owner: str | None = None
    lease_until: int | None = None
    attempts: int = 0
    failure: str | None = None  # why a failed copy failed: digest, missing, unavailable
    updated: int = 0
    last_pulled: int = 0


@dataclass(frozen=True)
class Referrers:
    body: bytes
    fetched: int
    last_pulled: int


@dataclass
class Collection:
    """The eviction's progress: where its scan stopped (None: between runs), when one last ended."""

    scan_start: dict[str, str] | None = None
    last_finished: int = 0


class CacheStore(UnsettledBodies):

    # ---- manifests and tags ------------------------------------------------------------------

    @staticmethod
    def tag_holder(repo: str, tag: str) -> Holder:
        """The record that names a cached tag's body."""
        return repo_pk(repo), f"tag#{tag}"

    @staticmethod
    def manifest_holder(repo: str, digest: str) -> Holder:
        """The record that names a cached manifest's body."""
        return repo_pk(repo), f"manifest#{digest}"

    @staticmethod
    def _manifest_values(cached: CachedManifest) -> dict[str, Any]:
        record = cached.record
        return {"digest": record.digest, "media_type": record.media_type, "size": record.size,
                "body": record.body, "body_key": record.body_key, "fetched": cached.fetched,
                "last_pulled": cached.last_pulled}

    @staticmethod
    def _cached_manifest(item: Mapping[str, Any]) -> CachedManifest:
        record = ManifestRecord(item["digest"], item["media_type"], item["size"], item.get("body"),
                                item.get("body_key"))
        return CachedManifest(record, item["fetched"], item.get("last_pulled", 0))

    def get_tag(self, repo: str, tag: str) -> CachedManifest | None:
        item = self._get(*self.tag_holder(repo, tag))
        return self._cached_manifest(item) if item else None

    def get_manifest(self, repo: str, digest: str) -> CachedManifest | None:
        item = self._get(*self.manifest_holder(repo, digest))
        return self._cached_manifest(item) if item else None

    def put_tag(self, repo: str, tag: str, cached: CachedManifest) -> tuple[bool, str | None]:
        """Store what the upstream said the tag is, unless a fetch newer than this one already
        did (two first pulls racing each store what they got; the later answer stays).
        Whether it was stored, and the body object of the tag it replaced, if any."""
        result = self._conditional(
            "put_item", Item=to_item({"pk": repo_pk(repo), "sk": f"tag#{tag}", **self._manifest_values(cached)}),
            ConditionExpression="attribute_not_exists(pk) OR fetched < :fetched",
            ExpressionAttributeValues=to_item({":fetched": cached.fetched}), ReturnValues="ALL_OLD")
        if result is None:
            # After a lost answer the body it replaced is unknown here: the purge settles it.
            return self._names_body(*self.tag_holder(repo, tag), cached), None
        return True, from_item(result.get("Attributes") or {}).get("body_key")

    def put_manifest(self, repo: str, cached: CachedManifest) -> bool:
        """Store a manifest by digest; False when it already is (its bytes are the same)."""
        item = {"pk": repo_pk(repo), "sk": f"manifest#{cached.record.digest}", **self._manifest_values(cached)}
        return (self._conditionally("put_item", Item=to_item(item), ConditionExpression="attribute_not_exists(pk)")
                or self._names_body(item["pk"], item["sk"], cached))

    def _names_body(self, pk: str, sk: str, cached: CachedManifest) -> bool:
        """Whether the item stored is this one, after a put whose condition failed: botocore
        sends a put again when the answer of one that took effect was lost, and the second
        then finds the first's item. Body keys are unique per fetch, so only they can tell."""
        key = cached.record.body_key
        return key is not None and (self._get(pk, sk, consistent=True) or {}).get("body_key") == key

    def revalidated(self, repo: str, tag: str, digest: str, was_fetched: int, now: int) -> bool:
        """The upstream still names the same digest: the tag is fresh again, unless another
        request changed it meanwhile."""
        return self._conditionally(
            "update_item", Key=to_item({"pk": repo_pk(repo), "sk": f"tag#{tag}"}),
            UpdateExpression="SET fetched = :now",
            ConditionExpression="#digest = :digest AND fetched = :was",
            ExpressionAttributeNames={"#digest": "digest"},
            ExpressionAttributeValues=to_item({":now": now, ":digest": digest, ":was": was_fetched}))

    def forget_tag(self, repo: str, tag: str, digest: str) -> dict[str, Any] | None:
        """The upstream no longer has the tag: drop it if it still names `digest`; what was
        dropped (for its body object), or None."""
        result = self._conditional(
            "delete_item", Key=to_item({"pk": repo_pk(repo), "sk": f"tag#{tag}"}),
            ConditionExpression="#digest = :digest", ExpressionAttributeNames={"#digest": "digest"},
            ExpressionAttributeValues=to_item({":digest": digest}), ReturnValues="ALL_OLD")
        return from_item(result["Attributes"]) if result and "Attributes" in result else None

    def touch(self, pk: str, sk: str, now: int) -> None:
        """Record a pull (of a tag, manifest, link or blob) for eviction; never recreates an
        item removed meanwhile."""
        self._conditionally("update_item", Key=to_item({"pk": pk, "sk": sk}),
                            UpdateExpression="SET last_pulled = :now", ConditionExpression="attribute_exists(pk)",
                            ExpressionAttributeValues=to_item({":now": now}))

    # ---- referrers -----------------------------------------------------------------------------

    def get_referrers(self, repo: str, digest: str) -> Referrers | None:
        item = self._get(repo_pk(repo), f"referrers#{digest}")
        return Referrers(item["body"], item["fetched"], item.get("last_pulled", 0)) if item else None

    def put_referrers(self, repo: str, digest: str, body: bytes, fetched: int) -> None:
        self._conditionally(
            "put_item", Item=to_item({"pk": repo_pk(repo), "sk": f"referrers#{digest}", "body": body,
                                      "fetched": fetched, "last_pulled": fetched}),
            ConditionExpression="attribute_not_exists(pk) OR fetched < :fetched",
            ExpressionAttributeValues=to_item({":fetched": fetched}))

    # ---- blobs -----------------------------------------------------------------------------------

    def link(self, repo: str, digest: str, now: int) -> None:
        self._db.put_item(TableName=self.table, Item=to_item({"pk": repo_pk(repo), "sk": f"link#{digest}",
                                                              "last_pulled": now}))

    def link_and_blob(self, repo: str, digest: str) -> tuple[dict[str, Any] | None, CachedBlob | None]:
        """The repository's link to a blob and the blob's record, in one read."""
        found = {item["pk"]: item for item in self._batch_get([(repo_pk(repo), f"link#{digest}"),
                                                               (blob_pk(digest), "blob")])}
        blob = found.get(blob_pk(digest))
        return found.get(repo_pk(repo)), self._blob(blob) if blob else None

    def get_blob(self, digest: str) -> CachedBlob | None:
        item = self._get(blob_pk(digest), "blob")
        return self._blob(item) if item else None

    @staticmethod
    def _blob(item: Mapping[str, Any]) -> CachedBlob:
        return CachedBlob(
            digest=item["pk"][len(BLOB_PK):], state=item["state"], key=item["key"],
            source_prefix=item["source_prefix"], source_repo=item["source_repo"], size=item.get("size"),
            offset=item.get("offset", 0), hash_state=item.get("hash_state"), multipart_id=item.get("multipart_id"),
            parts=tuple(item.get("parts", [])), lease_owner=item.get("lease_owner"),
            lease_until=item.get("lease_until"), attempts=item.get("attempts", 0), failure=item.get("failure"),
            updated=item.get("updated", 0),
            last_pulled=item.get("last_pulled", 0))

    @staticmethod
    def _blob_values(blob: CachedBlob) -> dict[str, Any]:
        return {"pk": blob_pk(blob.digest), "sk": "blob", "state": blob.state, "key": blob.key,
                "source_prefix": blob.source_prefix, "source_repo": blob.source_repo, "size": blob.size,
                "offset": blob.offset, "hash_state": blob.hash_state, "multipart_id": blob.multipart_id,
                "parts": list(blob.parts), "attempts": blob.attempts, "failure": blob.failure, "updated": blob.updated,
                "last_pulled": blob.last_pulled}

    def start_copy(self, blob: CachedBlob, retry_failed_before: int) -> bool:
        """Record a copy to make; False when the blob is cached, being copied, or failed
        recently. Of concurrent first pulls exactly one gets True, and queues the copy."""
        return self._conditionally(
            "put_item", Item=to_item(self._blob_values(blob)),
            ConditionExpression="attribute_not_exists(pk) OR (#state = :failed AND updated < :before)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=to_item({":failed": FAILED, ":before": retry_failed_before}))

    def nudge_copy(self, digest: str, was_updated: int, now: int) -> bool:
        """A copy that made no progress for a while (its message lost, its invocations dead):
        True for the one request that should queue it again."""
        return self._conditionally(
            "update_item", Key=to_item({"pk": blob_pk(digest), "sk": "blob"}), UpdateExpression="SET updated = :now",
            ConditionExpression="#state = :copying AND updated = :was",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=to_item({":now": now, ":was": was_updated, ":copying": COPYING}))

    def claim_copy(self, digest: str, owner: str, now: int, until: int) -> CachedBlob | None:
        """Take the copy for one invocation (duplicate SQS deliveries must not interleave);
        the record as claimed, or None when it is not to be copied or another holds it."""
        result = self._conditional(
            "update_item", Key=to_item({"pk": blob_pk(digest), "sk": "blob"}),
            UpdateExpression="SET lease_owner = :owner, lease_until = :until, updated = :now",
            ConditionExpression="#state = :copying AND (attribute_not_exists(lease_until) OR lease_until < :now)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=to_item({":owner": owner, ":until": until, ":now": now, ":copying": COPYING}),
            ReturnValues="ALL_NEW")
        return self._blob(from_item(result["Attributes"])) if result else None

    def save_copy(self, blob: CachedBlob, owner: str, until: int | None) -> bool:
        """Checkpoint the copy (progress, state) while holding the lease; `until` renews it,
        None gives it up. False when the lease was lost."""
        values = self._blob_values(blob)
        names = [k for k in values if k not in ("pk", "sk") and values[k] is not None]
        removed = [k for k in ("hash_state", "multipart_id", "size", "failure") if values[k] is None]
        expression = "SET " + ", ".join(f"#{k} = :{k}" for k in names)
        if until is not None:
            expression += ", lease_until = :until"
            values["until"] = until
            names.append("until")
        else:
            removed += ["lease_owner", "lease_until"]
        if removed:
            expression += " REMOVE " + ", ".join(f"#{k}" for k in removed)
        return self._conditionally(
            "update_item", Key=to_item({"pk": blob_pk(blob.digest), "sk": "blob"}), UpdateExpression=expression,
            ConditionExpression="lease_owner = :owner",
            ExpressionAttributeNames={f"#{k}": k for k in [*names, *removed] if k != "until"},
            ExpressionAttributeValues=to_item({**{f":{k}": values[k] for k in names}, ":owner": owner}))

    def forget(self, pk: str, sk: str, last_pulled: int) -> dict[str, Any] | None:
        """Evict an item unless it was pulled since the collector read it; what it held."""
        result = self._conditional(
            "delete_item", Key=to_item({"pk": pk, "sk": sk}),
            ConditionExpression="attribute_not_exists(last_pulled) OR last_pulled = :seen",
            ExpressionAttributeValues=to_item({":seen": last_pulled}), ReturnValues="ALL_OLD")
        return from_item(result["Attributes"]) if result and "Attributes" in result else None

    # ---- counters and the collector's checkpoint -----------------------------------------------

    def add_counts(self, day: str, counts: Mapping[str, int]) -> None:
        values = {k: v for k, v in counts.items() if v}
        if not values:
            return
        self._db.update_item(
            TableName=self.table, Key=to_item({"pk": COUNTERS_PK, "sk": f"stats#{day}"}),
            UpdateExpression="ADD " + ", ".join(f"#{k} :{k}" for k in values),
            ExpressionAttributeNames={f"#{k}": k for k in values},
            ExpressionAttributeValues=to_item({f":{k}": v for k, v in values.items()}))

    def counts(self) -> dict[str, dict[str, int]]:
        """Every day's counters, by day."""
        return {item["sk"].split("#", 1)[1]: {k: v for k, v in item.items() if k not in ("pk", "sk")}
                for item in self._query(COUNTERS_PK, "stats#")}

    def collection(self) -> Collection:
        item = self._get(COUNTERS_PK, "collect") or {}
        return Collection(item.get("scan_start"), item.get("last_finished", 0))

    def save_collection(self, collection: Collection) -> None:
        self._db.put_item(TableName=self.table, Item=to_item({
            "pk": COUNTERS_PK, "sk": "collect", "scan_start": collection.scan_start,
            "last_finished": collection.last_finished}))

    def scan(self, start: dict[str, str] | None = None,
             page_size: int = 500) -> Iterator[tuple[list[dict[str, Any]], dict[str, str] | None]]:
        """Pages of the cache's items (tags, manifests, links, referrers, blobs; not counters),
        each with the position after it, from which a later scan resumes."""
        return self._scan(("cache#", BLOB_PK), _SCANNED, start, page_size)
