"""Upload records (`upload#<uuid>`): created by POST, moved by each chunk on condition of the
offset it read, claimed by a finish, retired by promotion, cancel or the purge."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from chalicelib.storage.keys import sweep_shard, upload_pk
from chalicelib.storage.records import UPLOAD_TTL_HOURS, Direct, Piece, UploadRecord
from chalicelib.storage.table import Table, to_item

UPLOAD_TTL_SECONDS = UPLOAD_TTL_HOURS * 3600  # a backstop only: the purge job does the real clean-up


def upload_values(record: UploadRecord) -> dict[str, Any]:
    return {
        "pk": upload_pk(record.uuid),
        "sk": "upload",
        "repo": record.repo,
        "offset": record.offset,
        "hash_state": record.hash_state,
        "multipart_id": record.multipart_id,
        "parts": list(record.parts),
        "pieces": [{"key": p.key, "size": p.size} for p in record.pieces],
        "created": record.created,
        "touched": int(time.time()),  # the last commit or claim: the purge drops uploads idle long enough
        "sweep": sweep_shard("upload", record.uuid),
        "expires": record.created + UPLOAD_TTL_SECONDS,
        "direct": asdict(record.direct) if record.direct else None,
    }


def upload_record(uuid: str, item: dict[str, Any]) -> UploadRecord:
    return UploadRecord(
        uuid=uuid,
        repo=item["repo"],
        offset=item["offset"],
        hash_state=item.get("hash_state"),
        multipart_id=item.get("multipart_id"),
        parts=tuple(item.get("parts", [])),
        pieces=tuple(Piece(p["key"], p["size"]) for p in item.get("pieces", [])),
        created=item["created"],
        direct=Direct(**item["direct"]) if item.get("direct") else None,
        finishing=item.get("finishing"),
    )


def upload_delete(table: str, record: UploadRecord, also: str | None = None,
                  values: dict[str, Any] | None = None) -> dict[str, Any]:
    """A transaction's delete of the upload, only if no chunk committed since `record` was read
    (and `also` holds, with its `values`)."""
    condition = "attribute_exists(pk) AND #offset = :expected" + (f" AND {also}" if also else "")
    return {
        "Delete": {
            "TableName": table,
            "Key": to_item({"pk": upload_pk(record.uuid), "sk": "upload"}),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#offset": "offset"},
            "ExpressionAttributeValues": to_item({":expected": record.offset, **(values or {})}),
        }
    }


class UploadRecords(Table):

    def create_upload(self, record: UploadRecord) -> None:
        if self._conditionally("put_item", Item=to_item(upload_values(record)),
                               ConditionExpression="attribute_not_exists(pk)"):
            return
        # The uuid is new: an item already there is this write, sent again by botocore after
        # its answer was lost (anything else would be a uuid drawn twice, an error). Compared
        # as records: the values' `touched` is the moment they are made, not the upload's.
        if self.get_upload(record.uuid) != upload_record(record.uuid, upload_values(record)):
            raise RuntimeError(f"upload {record.uuid} exists already")

    def get_upload(self, uuid: str) -> UploadRecord | None:
        """Consistent: every request that reads an upload then writes on condition of it."""
        item = self._get(upload_pk(uuid), "upload", consistent=True)
        return upload_record(uuid, item) if item else None

    def commit_upload(self, record: UploadRecord, expected_offset: int, from_phase: str | None = None) -> bool:
        """Store the new state only if nobody moved the upload since we read it (or, for a
        first chunk written without reading, since it was created): same offset, same
        repository, no finish under way, and a chunked upload never overwrites a direct one.
        With `from_phase`, a direct upload moves only out of that phase."""
        values = upload_values(record)
        fixed = ("pk", "sk", "repo", "created", "sweep", "expires")  # set once, when the upload starts
        names = [k for k in values if k not in fixed and values[k] is not None]
        removed = [k for k in ("hash_state", "multipart_id") if values[k] is None]
        expression = "SET " + ", ".join(f"#{k} = :{k}" for k in names)
        if removed:
            expression += " REMOVE " + ", ".join(f"#{k}" for k in removed)
        condition = "attribute_exists(pk) AND #offset = :expected AND #repo = :repo AND attribute_not_exists(finishing)"
        if record.direct is None:
            condition += " AND attribute_not_exists(direct)"
        phase = ["direct", "phase"] if from_phase is not None else []
        if phase:
            condition += " AND #direct.#phase = :phase"
        return self._conditionally(
            "update_item",
            Key=to_item({"pk": upload_pk(record.uuid), "sk": "upload"}),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames={f"#{k}": k for k in [*names, *removed, "repo", *phase]},
            ExpressionAttributeValues=to_item({**{f":{k}": values[k] for k in names}, ":expected": expected_offset,
                                               ":repo": record.repo, ":phase": from_phase}),
        )

    def next_part_number(self, uuid: str) -> int | None:
        """A part number no other request on this upload will use: racing chunks then write
        distinct S3 parts, and only the committed ones are assembled. None when the upload is
        gone (finished or cancelled meanwhile)."""
        result = self._conditional(
            "update_item",
            Key=to_item({"pk": upload_pk(uuid), "sk": "upload"}),
            UpdateExpression="ADD part_seq :one",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":one": 1}),
            ReturnValues="UPDATED_NEW",
        )
        return int(result["Attributes"]["part_seq"]["N"]) if result else None

    def claim_finish(self, record: UploadRecord, digest: str) -> bool:
        """Mark the upload as being finished as `digest`, if nobody moved it since `record` was
        read and no finish of another digest holds it. From then on no chunk commits, so a
        finish can assemble the blob in steps S3 cannot undo (completing the multipart upload).
        A finish of the same digest, a retry say, may claim it again."""
        return self._conditionally(
            "update_item",
            Key=to_item({"pk": upload_pk(record.uuid), "sk": "upload"}),
            UpdateExpression="SET finishing = :digest, touched = :now",
            ConditionExpression="attribute_exists(pk) AND #offset = :expected AND "
                                "(attribute_not_exists(finishing) OR finishing = :digest)",
            ExpressionAttributeNames={"#offset": "offset"},
            ExpressionAttributeValues=to_item({":digest": digest, ":expected": record.offset,
                                               ":now": int(time.time())}),
        )

    def cancel_upload(self, record: UploadRecord) -> bool:
        """Delete the upload only as `record` holds it: no chunk committed and no finish claimed
        it since it was read (what the canceller then removes is exactly what it holds). False
        when it changed or is gone."""
        if record.finishing is None:
            return self._transact_one(upload_delete(self.table, record, "attribute_not_exists(finishing)"))
        return self._transact_one(upload_delete(self.table, record, "finishing = :finishing",
                                                {":finishing": record.finishing}))

    def retire_upload(self, record: UploadRecord, idle_since: int | None = None) -> bool:
        """Delete the upload only if no chunk committed since `record` was read; with
        `idle_since` (the purge), only if nothing at all touched it since then either (a finish
        claiming it does)."""
        if idle_since is None:
            return self._transact_one(upload_delete(self.table, record))
        return self._transact_one(upload_delete(self.table, record, "touched = :touched", {":touched": idle_since}))
