"""Registry metadata in the table: uploads, blobs, repository links, manifests, tags,
referrers and the catalog. Every state change that could race is a conditional write or a
transaction."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from chalicelib.storage.records import BlobRecord, ManifestRecord, Page
from chalicelib.storage.table import Table, from_item, to_item
from chalicelib.uploads.state import Piece, UploadState

CATALOG = "catalog"
UPLOAD_TTL_SECONDS = 7 * 24 * 3600  # a backstop only: the purge job does the real clean-up
_TRANSACTION_LIMIT = 100


def repo_pk(repo: str) -> str:
    return f"repo#{repo}"


def upload_pk(uuid: str) -> str:
    return f"upload#{uuid}"


def blob_pk(digest: str) -> str:
    return f"blob#{digest}"


def tag_sk(tag: str) -> str:
    """Tags list in the spec's lexical order (case-insensitive); the exact tag breaks ties.
    Tags cannot contain '#', which sorts below every character they can."""
    return f"tag#{tag.lower()}#{tag}"


class MetadataStore(Table):

    # ---- uploads -------------------------------------------------------------------------

    def _upload_values(self, state: UploadState) -> dict[str, Any]:
        return {
            "pk": upload_pk(state.uuid),
            "sk": "upload",
            "repo": state.repo,
            "offset": state.offset,
            "hash_state": state.hash_state,
            "multipart_id": state.multipart_id,
            "parts": list(state.parts),
            "pieces": [{"key": p.key, "size": p.size} for p in state.pieces],
            "created": state.created,
            "updated": int(time.time()),
            "expires": state.created + UPLOAD_TTL_SECONDS,
        }

    def create_upload(self, state: UploadState) -> None:
        self._db.put_item(
            TableName=self.table,
            Item=to_item(self._upload_values(state)),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get_upload(self, uuid: str) -> UploadState | None:
        item = self._get(upload_pk(uuid), "upload")
        if item is None:
            return None
        return UploadState(
            uuid=uuid,
            repo=item["repo"],
            offset=item["offset"],
            hash_state=item.get("hash_state"),
            multipart_id=item.get("multipart_id"),
            parts=tuple(item.get("parts", [])),
            pieces=tuple(Piece(p["key"], p["size"]) for p in item.get("pieces", [])),
            created=item["created"],
        )

    def commit_upload(self, state: UploadState, expected_offset: int) -> bool:
        """Store the new state only if nobody moved the upload since we read it."""
        values = self._upload_values(state)
        names = [k for k in values if k not in ("pk", "sk") and values[k] is not None]
        removed = [k for k in ("hash_state", "multipart_id") if values[k] is None]
        expression = "SET " + ", ".join(f"#{k} = :{k}" for k in names)
        if removed:
            expression += " REMOVE " + ", ".join(f"#{k}" for k in removed)
        return self._conditionally(
            "update_item",
            Key=to_item({"pk": upload_pk(state.uuid), "sk": "upload"}),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk) AND #offset = :expected",
            ExpressionAttributeNames={f"#{k}": k for k in names + removed},
            ExpressionAttributeValues=to_item({**{f":{k}": values[k] for k in names}, ":expected": expected_offset}),
        )

    def next_part_number(self, uuid: str) -> int:
        """A part number no other request on this upload will use: racing chunks then write
        distinct S3 parts, and only the committed ones are assembled."""
        result = self._db.update_item(
            TableName=self.table,
            Key=to_item({"pk": upload_pk(uuid), "sk": "upload"}),
            UpdateExpression="ADD part_seq :one",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=to_item({":one": 1}),
            ReturnValues="UPDATED_NEW",
        )
        return int(result["Attributes"]["part_seq"]["N"])

    def delete_upload(self, uuid: str) -> bool:
        return self._delete_existing(upload_pk(uuid), "upload")

    # ---- blobs ---------------------------------------------------------------------------

    def get_blob(self, digest: str) -> BlobRecord | None:
        item = self._get(blob_pk(digest), "blob")
        return BlobRecord(digest, item["key"], item["size"]) if item else None

    def get_link(self, repo: str, digest: str) -> BlobRecord | None:
        """The repository's link carries key and size, so a blob GET or HEAD is one read."""
        item = self._get(repo_pk(repo), f"link#{digest}")
        return BlobRecord(digest, item["key"], item["size"]) if item else None

    def _link_put(self, repo: str, blob: BlobRecord) -> dict[str, Any]:
        values = {"pk": repo_pk(repo), "sk": f"link#{blob.digest}", "key": blob.key, "size": blob.size,
                  "created": int(time.time())}
        return {"Put": {"TableName": self.table, "Item": to_item(values)}}

    def link(self, repo: str, blob: BlobRecord) -> None:
        self._db.put_item(**self._link_put(repo, blob)["Put"])

    def unlink(self, repo: str, digest: str) -> bool:
        return self._delete_existing(repo_pk(repo), f"link#{digest}")

    def promote(self, repo: str, blob: BlobRecord, upload: UploadState | None) -> str:
        """Record a verified blob, link it into `repo` and retire the upload, all or nothing.

        Returns "created", "exists" (another push of the same digest won; our object is
        surplus) or "upload-gone" (the upload was finished or cancelled concurrently).
        """
        blob_put = {
            "Put": {
                "TableName": self.table,
                "Item": to_item({"pk": blob_pk(blob.digest), "sk": "blob", "key": blob.key, "size": blob.size,
                                  "created": int(time.time())}),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        actions = [blob_put, self._link_put(repo, blob)]
        if upload is not None:
            actions.append(self._upload_delete(upload))
        try:
            self._transact(actions)
            return "created"
        except self._db.exceptions.TransactionCanceledException as error:
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
        if upload is not None and len(reasons) > 2 and reasons[2] == "ConditionalCheckFailed":
            return "upload-gone"
        if reasons and reasons[0] == "ConditionalCheckFailed":
            return "exists"
        raise RuntimeError(f"promote transaction cancelled: {reasons}")

    def _upload_delete(self, upload: UploadState) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self.table,
                "Key": to_item({"pk": upload_pk(upload.uuid), "sk": "upload"}),
                "ConditionExpression": "attribute_exists(pk) AND #offset = :expected",
                "ExpressionAttributeNames": {"#offset": "offset"},
                "ExpressionAttributeValues": to_item({":expected": upload.offset}),
            }
        }

    def link_and_retire(self, repo: str, blob: BlobRecord, upload: UploadState | None) -> bool:
        """Link an already stored blob and retire the upload that pushed it again."""
        actions = [self._link_put(repo, blob)]
        if upload is not None:
            actions.append(self._upload_delete(upload))
        try:
            self._transact(actions)
        except self._db.exceptions.TransactionCanceledException:
            return False
        return True

    def missing_links(self, repo: str, digests: Iterable[str]) -> list[str]:
        return self._missing(repo, [f"link#{d}" for d in digests])

    def missing_manifests(self, repo: str, digests: Iterable[str]) -> list[str]:
        return self._missing(repo, [f"manifest#{d}" for d in digests])

    def _missing(self, repo: str, sort_keys: list[str]) -> list[str]:
        wanted = list(dict.fromkeys(sort_keys))
        found: set[str] = set()
        for start in range(0, len(wanted), 100):
            keys = [to_item({"pk": repo_pk(repo), "sk": sk}) for sk in wanted[start : start + 100]]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ProjectionExpression": "sk"}}
            while request:
                result = self._db.batch_get_item(RequestItems=request)
                found.update(from_item(i)["sk"] for i in result["Responses"].get(self.table, []))
                request = result.get("UnprocessedKeys") or {}
        return [sk.split("#", 1)[1] for sk in wanted if sk not in found]

    # ---- manifests and tags --------------------------------------------------------------

    def _manifest_values(self, record: ManifestRecord) -> dict[str, Any]:
        return {
            "digest": record.digest,
            "media_type": record.media_type,
            "size": record.size,
            "body": record.body,
            "body_key": record.body_key,
            "subject": record.subject,
            "artifact_type": record.artifact_type,
            "annotations": record.annotations,
            "created": int(time.time()),
        }

    @staticmethod
    def _manifest(item: dict[str, Any]) -> ManifestRecord:
        return ManifestRecord(
            digest=item["digest"],
            media_type=item["media_type"],
            size=item["size"],
            body=item.get("body"),
            body_key=item.get("body_key"),
            subject=item.get("subject"),
            artifact_type=item.get("artifact_type"),
            annotations=item.get("annotations"),
        )

    def put_manifest(self, repo: str, record: ManifestRecord, tag: str | None) -> None:
        """Manifest, its tag (carrying a copy, so GET by tag is one read), its referrer entry
        and the catalog entry, in one transaction."""
        values = self._manifest_values(record)
        items = [{"pk": repo_pk(repo), "sk": f"manifest#{record.digest}", **values}]
        if tag is not None:
            items.append({"pk": repo_pk(repo), "sk": tag_sk(tag), **values})
        if record.subject:
            items.append({
                "pk": repo_pk(repo), "sk": f"referrer#{record.subject}#{record.digest}",
                "digest": record.digest, "media_type": record.media_type, "size": record.size,
                "artifact_type": record.artifact_type, "annotations": record.annotations,
            })
        items.append({"pk": CATALOG, "sk": repo_pk(repo)})
        self._transact([{"Put": {"TableName": self.table, "Item": to_item(i)}} for i in items])

    def get_manifest(self, repo: str, digest: str) -> ManifestRecord | None:
        item = self._get(repo_pk(repo), f"manifest#{digest}")
        return self._manifest(item) if item else None

    def get_tag(self, repo: str, tag: str) -> ManifestRecord | None:
        item = self._get(repo_pk(repo), tag_sk(tag))
        return self._manifest(item) if item else None

    def delete_tag(self, repo: str, tag: str) -> bool:
        return self._delete_existing(repo_pk(repo), tag_sk(tag))

    def delete_manifest(self, repo: str, record: ManifestRecord) -> bool:
        """Delete a manifest, the tags that still point at it, and its referrer entry."""
        pk = repo_pk(repo)
        tags = [
            item["sk"]
            for item in self._query(pk, "tag#", projection="sk, digest")
            if item.get("digest") == record.digest
        ]
        first: dict[str, Any] = {
            "Delete": {
                "TableName": self.table,
                "Key": to_item({"pk": pk, "sk": f"manifest#{record.digest}"}),
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        actions = [first]
        for sk in tags:
            # Only if the tag still names this manifest: a concurrent re-tag wins.
            actions.append({"Delete": {
                "TableName": self.table,
                "Key": to_item({"pk": pk, "sk": sk}),
                "ConditionExpression": "attribute_not_exists(pk) OR #digest = :digest",
                "ExpressionAttributeNames": {"#digest": "digest"},
                "ExpressionAttributeValues": to_item({":digest": record.digest}),
            }})
        if record.subject:
            referrer = {"pk": pk, "sk": f"referrer#{record.subject}#{record.digest}"}
            actions.append({"Delete": {"TableName": self.table, "Key": to_item(referrer)}})
        for start in range(0, len(actions), _TRANSACTION_LIMIT):
            batch = actions[start : start + _TRANSACTION_LIMIT]
            while batch:
                try:
                    self._transact(batch)
                    break
                except self._db.exceptions.TransactionCanceledException as error:
                    reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                if start == 0 and batch[0] is first and reasons[0] == "ConditionalCheckFailed":
                    return False  # deleted concurrently
                # Tags re-pointed meanwhile keep their new target: retry without them.
                kept = [a for a, r in zip(batch, reasons, strict=False) if r != "ConditionalCheckFailed"]
                if len(kept) == len(batch):
                    raise RuntimeError(f"manifest delete cancelled: {reasons}")
                batch = kept
        return True

    def list_tags(self, repo: str, limit: int, last: str | None) -> Page:
        return self._page(repo_pk(repo), "tag#", tag_sk, limit, last)

    def list_repositories(self, limit: int, last: str | None) -> Page:
        return self._page(CATALOG, "repo#", repo_pk, limit, last)

    def repository_exists(self, repo: str) -> bool:
        return self._get(CATALOG, repo_pk(repo)) is not None

    def _page(self, pk: str, prefix: str, sort_key: Callable[[str], str], limit: int, last: str | None) -> Page:
        """Names after `last`, in sort-key order; the name is what follows the key's last '#'."""
        names: list[str] = []
        start = sort_key(last) if last is not None else None
        for item in self._query(pk, prefix, exclusive_start=start, limit=limit + 1, projection="sk"):
            names.append(item["sk"].rsplit("#", 1)[1])
            if len(names) > limit:
                return Page(names[:limit], more=True)
        return Page(names, more=False)

    def list_referrers(self, repo: str, subject: str) -> list[dict[str, Any]]:
        return list(self._query(repo_pk(repo), f"referrer#{subject}#"))
