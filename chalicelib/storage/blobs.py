"""Blob records (`blob#<digest>`), their tombstones (`doomed#<digest>`), repository links
(`repo#<name>` / `link#<digest>`) and reference counts. A blob may be counted or linked only
while it is stored and the collector is not removing it (docs/lifecycle.md)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from chalicelib.storage.keys import TOMBSTONE, blob_pk, link_sk, repo_pk, sweep_shard
from chalicelib.storage.records import BlobRecord, UploadRecord
from chalicelib.storage.table import FAILED, TRANSACTION_LIMIT, Table, cancellation_reasons, to_item
from chalicelib.storage.uploads import upload_delete

PUSH_ATTEMPTS = 5
_BLOB_USABLE = "attribute_exists(pk) AND attribute_not_exists(doomed)"


class MissingBlobs(Exception):
    """Blobs a manifest references are not (or no longer) stored and linked in its repository."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__(", ".join(digests))
        self.digests = digests


def blob_update(table: str, digest: str, expression: str, condition: str, values: dict[str, Any]) -> dict[str, Any]:
    update = {"TableName": table, "Key": to_item({"pk": blob_pk(digest), "sk": "blob"}),
              "UpdateExpression": expression, "ConditionExpression": condition,
              "ExpressionAttributeValues": to_item(values)}
    if "#key" in condition:
        update["ExpressionAttributeNames"] = {"#key": "key"}
    return {"Update": update}


def references(table: str, repo: str, digests: Sequence[str], delta: int) -> list[dict[str, Any]]:
    """Count a manifest's blobs in (+1) or out (-1). Counting in needs each blob usable and
    linked in the repository, so a blob the collector took fails the push instead of leaving
    a manifest that points at nothing.

    The collector finds candidates in the sweep index, not by scanning: a count-out puts the
    blob there (it may have dropped to no references), a count-in takes it out (it has one
    now). So every blob without references is in the index, whatever order these come in."""
    if delta < 0:
        return [blob_update(table, d, "ADD refs :delta SET sweep = :sweep", "attribute_exists(pk)",
                            {":delta": delta, ":sweep": sweep_shard("blob", d)}) for d in digests]
    values = {":delta": delta, ":now": int(time.time()), ":repo": repo}
    return [blob_update(table, d, "ADD refs :delta SET touched = :now REMOVE sweep",
                        f"{_BLOB_USABLE} AND contains(repos, :repo)", values) for d in digests]


def tombstone(doomed: dict[str, Any]) -> dict[str, Any]:
    """What the collector needs to finish removing a copy whose record a new push took over,
    should it have stopped half-way: the old key and the repositories linking it."""
    digest = doomed["pk"].split("#", 1)[1]
    return {"pk": f"{TOMBSTONE}{digest}", "sk": doomed["key"], "key": doomed["key"], "size": doomed["size"],
            "repos": doomed.get("repos") or None, "sweep": sweep_shard("blob", digest), "touched": 0}


class BlobRecords(Table):

    def get_blob(self, digest: str) -> BlobRecord | None:
        """The stored blob; None also while the collector is removing it. Consistent: a finish
        or mount decides on it whether to store or link."""
        item = self._get(blob_pk(digest), "blob", consistent=True)
        return BlobRecord(digest, item["key"], item["size"]) if item and "doomed" not in item else None

    def get_link(self, repo: str, digest: str) -> BlobRecord | None:
        """The repository's link carries key and size, so a blob GET or HEAD is one read."""
        item = self._get(repo_pk(repo), link_sk(digest))
        return BlobRecord(digest, item["key"], item["size"]) if item else None

    def _link_put(self, repo: str, blob: BlobRecord) -> dict[str, Any]:
        return self._put({"pk": repo_pk(repo), "sk": link_sk(blob.digest), "key": blob.key, "size": blob.size,
                          "created": int(time.time())})

    def unlink(self, repo: str, digest: str) -> bool:
        """Remove the repository's link and the repository from the blob's `repos`."""
        link = {"Delete": {"TableName": self.table, "Key": to_item({"pk": repo_pk(repo), "sk": link_sk(digest)}),
                           "ConditionExpression": "attribute_exists(pk)"}}
        forget = blob_update(self.table, digest, "DELETE repos :repos", "attribute_exists(pk)", {":repos": {repo}})
        try:
            self._transact([link, forget])
            return True
        except self._db.exceptions.TransactionCanceledException as error:
            reasons = cancellation_reasons(error)
        if reasons[0] == FAILED:
            return False
        # No blob record (being collected): the link goes alone.
        return self._delete_existing(repo_pk(repo), link_sk(digest))

    def _count_early(self, repo: str, digests: list[str]) -> None:
        """Count in the blobs that do not fit the manifest's own transaction, before it. Should
        that transaction then not happen, the blobs are counted out again; a crash in between
        over-counts, which keeps blobs too long but never loses one."""
        counted: list[str] = []
        for start in range(0, len(digests), TRANSACTION_LIMIT):
            batch = digests[start : start + TRANSACTION_LIMIT]
            try:
                self._transact(references(self.table, repo, batch, +1))
            except self._db.exceptions.TransactionCanceledException as error:
                missing = [d for d, r in zip(batch, cancellation_reasons(error), strict=False) if r == FAILED]
                self._transact_all(references(self.table, repo, counted, -1))
                if missing:
                    raise MissingBlobs(missing) from None
                raise
            counted += batch

    def promote(self, repo: str, blob: BlobRecord, upload: UploadRecord | None) -> str:
        """Record a verified blob, link it into `repo` and retire the upload, all or nothing.

        Returns "created", "exists" (another push of the same digest won; our object is
        surplus) or "upload-gone" (the upload was finished or cancelled concurrently).
        """
        replacing: dict[str, Any] | None = None
        for _ in range(PUSH_ATTEMPTS):
            actions = [self._blob_put(repo, blob, replacing), self._link_put(repo, blob)]
            if upload is not None:
                actions.append(upload_delete(self.table, upload))
            if replacing is not None:
                actions.append(self._put(tombstone(replacing)))
            try:
                self._transact(actions)
                return "created"
            except self._db.exceptions.TransactionCanceledException as error:
                reasons = cancellation_reasons(error)
            if upload is not None and reasons[2] == FAILED:
                return "upload-gone"
            if reasons[0] != FAILED:
                raise RuntimeError(f"promote transaction cancelled: {reasons}")
            replacing = self._get(blob_pk(blob.digest), "blob", consistent=True)
            if replacing is not None and "doomed" not in replacing:
                return "exists"
        raise RuntimeError(f"blob {blob.digest} kept changing while promoted")

    def _blob_put(self, repo: str, blob: BlobRecord, replacing: dict[str, Any] | None) -> dict[str, Any]:
        now = int(time.time())
        values = {"pk": blob_pk(blob.digest), "sk": "blob", "key": blob.key, "size": blob.size, "created": now,
                  "touched": now, "refs": 0, "repos": {repo}, "sweep": sweep_shard("blob", blob.digest)}
        if replacing is None:
            return self._put(values, "attribute_not_exists(pk)")
        # The copy the collector is removing gives way to ours.
        action = self._put(values, "attribute_exists(doomed) AND #key = :key")
        action["Put"].update(ExpressionAttributeNames={"#key": "key"},
                             ExpressionAttributeValues=to_item({":key": replacing["key"]}))
        return action

    def link_existing(self, repo: str, blob: BlobRecord, upload: UploadRecord | None) -> str:
        """Link a stored blob into `repo` (a mount, or a push of bytes already stored), mark it
        touched for the collector's grace period, and retire the upload if there is one.

        Returns "linked", "blob-gone" (the collector is removing or has removed it, or the
        record now holds another key) or "upload-gone".
        """
        touch = blob_update(self.table, blob.digest, "SET touched = :now ADD repos :repos",
                            f"{_BLOB_USABLE} AND #key = :key", {":now": int(time.time()), ":repos": {repo},
                                                                 ":key": blob.key})
        actions = [touch, self._link_put(repo, blob)]
        if upload is not None:
            actions.append(upload_delete(self.table, upload))
        try:
            self._transact(actions)
            return "linked"
        except self._db.exceptions.TransactionCanceledException as error:
            reasons = cancellation_reasons(error)
        if reasons[0] == FAILED:
            return "blob-gone"
        if upload is not None and reasons[2] == FAILED:
            return "upload-gone"
        raise RuntimeError(f"link transaction cancelled: {reasons}")
