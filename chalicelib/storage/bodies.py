"""Manifest bodies kept in S3 that may end up named by no record (docs/lifecycle.md, "Manifest
bodies in S3"). A request that writes one, or removes the record naming one, first records it
*unsettled* (`body#<key>`, in the sweep index), together with the record meant to name it (its
holder); it settles it once it knows the outcome, and the purge does if the request died first:
a body its holder names stays, any other goes. The registry's manifests and the pull-through
cache's tags and manifests both keep their large bodies this way."""

from __future__ import annotations

import time
import uuid
from typing import Any

from chalicelib.storage.keys import sweep_shard, unsettled_body_pk
from chalicelib.storage.s3 import BlobStore
from chalicelib.storage.table import Table, to_item

Holder = tuple[str, str]  # the (pk, sk) of the record meant to name a body


def unsettled_body(holder: Holder, key: str) -> dict[str, Any]:
    """The item; its random note lets the one who wrote it (or the purge, which read it) settle
    it only if nobody has noted the body again since."""
    return {"pk": unsettled_body_pk(key), "sk": "body", "holder_pk": holder[0], "holder_sk": holder[1],
            "touched": int(time.time()), "sweep": sweep_shard("body", key), "note": uuid.uuid4().hex[:16]}


class UnsettledBodies(Table):

    def note_body(self, holder: Holder, key: str) -> str:
        """Before a body is written to S3 at `key`, or before its holder may stop naming it;
        returns the note, for `settle_body`."""
        item = unsettled_body(holder, key)
        self._db.put_item(TableName=self.table, Item=to_item(item))
        return str(item["note"])

    def settle_body(self, key: str, note: str | None = None) -> None:
        """Once the body at `key` is deleted; with `note`, once it is named by its holder (or is
        another's to delete), and only if the item is still that note: a request since noted the
        body again, and it stays unsettled until that one (or the purge) settles it."""
        unsettled: dict[str, Any] = {"Key": to_item({"pk": unsettled_body_pk(key), "sk": "body"})}
        if note:
            unsettled.update(ConditionExpression="#note = :note", ExpressionAttributeNames={"#note": "note"},
                             ExpressionAttributeValues=to_item({":note": note}))
        self._conditional("delete_item", **unsettled)


def drop_body(store: UnsettledBodies, blobs: BlobStore, key: str) -> None:
    """Delete a body no record names (any longer), then settle it."""
    blobs.delete([key])
    store.settle_body(key)
