"""The audit's reads of the table (every item of a kind, whole) and the repairs it may make,
each conditional on what it read, so that a request committing meanwhile always wins."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chalicelib.storage.housekeeping import HousekeepingStore
from chalicelib.storage.keys import blob_pk, manifest_sk, repo_pk, sweep_shard, tag_sk
from chalicelib.storage.manifests import manifest_record
from chalicelib.storage.records import ManifestRecord
from chalicelib.storage.table import to_item


class AuditStore(HousekeepingStore):

    def items(self, prefixes: tuple[str, ...]) -> Iterator[dict[str, Any]]:
        for page, _ in self._scan(prefixes):
            yield from page

    def manifest(self, item: dict[str, Any]) -> ManifestRecord:
        return manifest_record(item)

    def correct_refs(self, digest: str, seen: int, counted: int) -> bool:
        """Set the blob's reference count, if it is still `seen`: any manifest pushed or deleted
        since it was read changed it."""
        # Into the sweep index as well: a blob with no references must be there, and one that
        # has some the collector drops from it again (BlobRecords' references()).
        return self._conditionally(
            "update_item", Key=to_item({"pk": blob_pk(digest), "sk": "blob"}),
            UpdateExpression="SET refs = :counted, sweep = :sweep",
            ConditionExpression="refs = :seen AND attribute_not_exists(doomed)",
            ExpressionAttributeValues=to_item({":seen": seen, ":counted": counted,
                                               ":sweep": sweep_shard("blob", digest)}))

    def drop_dangling_tag(self, repo: str, tag: str, digest: str) -> bool:
        """Delete the tag if it still names `digest` and the repository still has no such manifest."""
        pk = repo_pk(repo)
        absent = {"ConditionCheck": {"TableName": self.table, "Key": to_item({"pk": pk, "sk": manifest_sk(digest)}),
                                     "ConditionExpression": "attribute_not_exists(pk)"}}
        drop = {"Delete": {"TableName": self.table, "Key": to_item({"pk": pk, "sk": tag_sk(tag)}),
                           "ConditionExpression": "#digest = :digest",
                           "ExpressionAttributeNames": {"#digest": "digest"},
                           "ExpressionAttributeValues": to_item({":digest": digest})}}
        try:
            self._transact([absent, drop])
            return True
        except self._db.exceptions.TransactionCanceledException:
            return False
