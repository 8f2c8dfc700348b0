"""Registry metadata in the table: uploads, blobs, repository links, manifests, tags,
referrers and the catalog. Every state change that could race is a conditional write or a
transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import Any

from chalicelib.lifecycle.policy import HOUR, UPLOAD_TTL_HOURS
from chalicelib.storage.records import BlobRecord, ManifestRecord, Page
from chalicelib.storage.table import FAILED, TRANSACTION_LIMIT, Table, cancellation_reasons, from_item, to_item
from chalicelib.uploads.state import Direct, Piece, UploadState

CATALOG = "catalog"
UPLOAD_TTL_SECONDS = UPLOAD_TTL_HOURS * HOUR  # a backstop only: the purge job does the real clean-up
_PUSH_ATTEMPTS = 5
TOMBSTONE = "doomed#"  # pk prefix of a removed-but-not-yet-deleted blob copy (see promote)
# A blob record may be counted or linked only while it exists and the collector is not
# removing it (docs/lifecycle.md).
_BLOB_USABLE = "attribute_exists(pk) AND attribute_not_exists(doomed)"


def _annotations_text(annotations: dict[str, str] | None) -> str | None:
    """Annotations are kept as JSON text: a DynamoDB map cannot have the empty key, which the
    spec allows."""
    return json.dumps(annotations, separators=(",", ":")) if annotations else None


def _annotations_read(text: str | None) -> dict[str, str] | None:
    return json.loads(text) if text else None


class MissingBlobs(Exception):
    """Blobs a manifest references are not (or no longer) stored and linked in its repository."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__(", ".join(digests))
        self.digests = digests


class TagTaken(Exception):
    """An immutable tag already names another manifest."""

    def __init__(self, tag: str, digest: str | None) -> None:
        super().__init__(tag)
        self.tag = tag
        self.digest = digest


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
            "direct": asdict(state.direct) if state.direct else None,
        }

    def create_upload(self, state: UploadState) -> None:
        self._db.put_item(
            TableName=self.table,
            Item=to_item(self._upload_values(state)),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get_upload(self, uuid: str) -> UploadState | None:
        item = self._get(upload_pk(uuid), "upload")
        return self.upload_state(uuid, item) if item else None

    @staticmethod
    def upload_state(uuid: str, item: dict[str, Any]) -> UploadState:
        return UploadState(
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

    def commit_upload(self, state: UploadState, expected_offset: int, from_phase: str | None = None) -> bool:
        """Store the new state only if nobody moved the upload since we read it (or, for a
        first chunk written without reading, since it was created): same offset, same
        repository, no finish under way, and a chunked upload never overwrites a direct one.
        With `from_phase`, a direct upload moves only out of that phase."""
        values = self._upload_values(state)
        fixed = ("pk", "sk", "repo", "created", "expires")  # set once, when the upload starts
        names = [k for k in values if k not in fixed and values[k] is not None]
        removed = [k for k in ("hash_state", "multipart_id") if values[k] is None]
        expression = "SET " + ", ".join(f"#{k} = :{k}" for k in names)
        if removed:
            expression += " REMOVE " + ", ".join(f"#{k}" for k in removed)
        condition = "attribute_exists(pk) AND #offset = :expected AND #repo = :repo AND attribute_not_exists(finishing)"
        if state.direct is None:
            condition += " AND attribute_not_exists(direct)"
        phase = ["direct", "phase"] if from_phase is not None else []
        if phase:
            condition += " AND #direct.#phase = :phase"
        return self._conditionally(
            "update_item",
            Key=to_item({"pk": upload_pk(state.uuid), "sk": "upload"}),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames={f"#{k}": k for k in [*names, *removed, "repo", *phase]},
            ExpressionAttributeValues=to_item({**{f":{k}": values[k] for k in names}, ":expected": expected_offset,
                                               ":repo": state.repo, ":phase": from_phase}),
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

    def claim_finish(self, state: UploadState, digest: str) -> bool:
        """Mark the upload as being finished as `digest`, if nobody moved it since `state` was
        read and no finish of another digest holds it. From then on no chunk commits, so a
        finish can assemble the blob in steps S3 cannot undo (completing the multipart upload).
        A finish of the same digest, a retry say, may claim it again."""
        return self._conditionally(
            "update_item",
            Key=to_item({"pk": upload_pk(state.uuid), "sk": "upload"}),
            UpdateExpression="SET finishing = :digest",
            ConditionExpression="attribute_exists(pk) AND #offset = :expected AND "
                                "(attribute_not_exists(finishing) OR finishing = :digest)",
            ExpressionAttributeNames={"#offset": "offset"},
            ExpressionAttributeValues=to_item({":digest": digest, ":expected": state.offset}),
        )

    def delete_upload(self, uuid: str) -> UploadState | None:
        """Delete the upload whatever its state; returns what it held when deleted (None when it
        was already gone), which may be more than a state read earlier."""
        result = self._conditional(
            "delete_item",
            Key=to_item({"pk": upload_pk(uuid), "sk": "upload"}),
            ConditionExpression="attribute_exists(pk)",
            ReturnValues="ALL_OLD",
        )
        return self.upload_state(uuid, from_item(result["Attributes"])) if result else None

    def retire_upload(self, state: UploadState) -> bool:
        """Delete the upload only if no chunk committed since `state` was read."""
        delete = dict(self._upload_delete(state)["Delete"])
        del delete["TableName"]
        return self._conditionally("delete_item", **delete)

    # ---- blobs ---------------------------------------------------------------------------

    def get_blob(self, digest: str) -> BlobRecord | None:
        """The stored blob; None also while the collector is removing it."""
        item = self._get(blob_pk(digest), "blob")
        return BlobRecord(digest, item["key"], item["size"]) if item and "doomed" not in item else None

    def get_link(self, repo: str, digest: str) -> BlobRecord | None:
        """The repository's link carries key and size, so a blob GET or HEAD is one read."""
        item = self._get(repo_pk(repo), f"link#{digest}")
        return BlobRecord(digest, item["key"], item["size"]) if item else None

    def _link_put(self, repo: str, blob: BlobRecord) -> dict[str, Any]:
        values = {"pk": repo_pk(repo), "sk": f"link#{blob.digest}", "key": blob.key, "size": blob.size,
                  "created": int(time.time())}
        return {"Put": {"TableName": self.table, "Item": to_item(values)}}

    def unlink(self, repo: str, digest: str) -> bool:
        """Remove the repository's link and the repository from the blob's `repos`."""
        link = {"Delete": {"TableName": self.table, "Key": to_item({"pk": repo_pk(repo), "sk": f"link#{digest}"}),
                           "ConditionExpression": "attribute_exists(pk)"}}
        forget = self._blob_update(digest, "DELETE repos :repos", "attribute_exists(pk)", {":repos": {repo}})
        try:
            self._transact([link, forget])
            return True
        except self._db.exceptions.TransactionCanceledException as error:
            reasons = cancellation_reasons(error)
        if reasons[0] == FAILED:
            return False
        # No blob record (being collected): the link goes alone.
        return self._delete_existing(repo_pk(repo), f"link#{digest}")

    def _blob_update(self, digest: str, expression: str, condition: str, values: dict[str, Any]) -> dict[str, Any]:
        update = {"TableName": self.table, "Key": to_item({"pk": blob_pk(digest), "sk": "blob"}),
                  "UpdateExpression": expression, "ConditionExpression": condition,
                  "ExpressionAttributeValues": to_item(values)}
        if "#key" in condition:
            update["ExpressionAttributeNames"] = {"#key": "key"}
        return {"Update": update}

    def _references(self, repo: str, digests: Sequence[str], delta: int) -> list[dict[str, Any]]:
        """Count a manifest's blobs in (+1) or out (-1). Counting in needs each blob usable and
        linked in the repository, so a blob the collector took fails the push instead of
        leaving a manifest that points at nothing."""
        if delta < 0:
            return [self._blob_update(d, "ADD refs :delta", "attribute_exists(pk)", {":delta": delta})
                    for d in digests]
        values = {":delta": delta, ":now": int(time.time()), ":repo": repo}
        return [self._blob_update(d, "ADD refs :delta SET touched = :now",
                                  f"{_BLOB_USABLE} AND contains(repos, :repo)", values) for d in digests]

    def _count_early(self, repo: str, digests: list[str]) -> None:
        """Count in the blobs that do not fit the manifest's own transaction, before it. Should
        that transaction then not happen, the blobs are counted out again; a crash in between
        over-counts, which keeps blobs too long but never loses one."""
        counted: list[str] = []
        for start in range(0, len(digests), TRANSACTION_LIMIT):
            batch = digests[start : start + TRANSACTION_LIMIT]
            try:
                self._transact(self._references(repo, batch, +1))
            except self._db.exceptions.TransactionCanceledException as error:
                missing = [d for d, r in zip(batch, cancellation_reasons(error), strict=False) if r == FAILED]
                self._transact_all(self._references(repo, counted, -1))
                if missing:
                    raise MissingBlobs(missing) from None
                raise
            counted += batch

    def promote(self, repo: str, blob: BlobRecord, upload: UploadState | None) -> str:
        """Record a verified blob, link it into `repo` and retire the upload, all or nothing.

        Returns "created", "exists" (another push of the same digest won; our object is
        surplus) or "upload-gone" (the upload was finished or cancelled concurrently).
        """
        replacing: dict[str, Any] | None = None
        for _ in range(_PUSH_ATTEMPTS):
            actions = [self._blob_put(repo, blob, replacing), self._link_put(repo, blob)]
            if upload is not None:
                actions.append(self._upload_delete(upload))
            if replacing is not None:
                actions.append(self._put(self._tombstone(replacing)))
            try:
                self._transact(actions)
                return "created"
            except self._db.exceptions.TransactionCanceledException as error:
                reasons = cancellation_reasons(error)
            if upload is not None and reasons[2] == FAILED:
                return "upload-gone"
            if reasons[0] != FAILED:
                raise RuntimeError(f"promote transaction cancelled: {reasons}")
            replacing = self._get(blob_pk(blob.digest), "blob")
            if replacing is not None and "doomed" not in replacing:
                return "exists"
        raise RuntimeError(f"blob {blob.digest} kept changing while promoted")

    def _blob_put(self, repo: str, blob: BlobRecord, replacing: dict[str, Any] | None) -> dict[str, Any]:
        now = int(time.time())
        values = {"pk": blob_pk(blob.digest), "sk": "blob", "key": blob.key, "size": blob.size, "created": now,
                  "touched": now, "refs": 0, "repos": {repo}}
        if replacing is None:
            return self._put(values, "attribute_not_exists(pk)")
        # The copy the collector is removing gives way to ours.
        action = self._put(values, "attribute_exists(doomed) AND #key = :key")
        action["Put"].update(ExpressionAttributeNames={"#key": "key"},
                             ExpressionAttributeValues=to_item({":key": replacing["key"]}))
        return action

    @staticmethod
    def _tombstone(doomed: dict[str, Any]) -> dict[str, Any]:
        """What the collector needs to finish removing a copy whose record a new push took
        over, should it have stopped half-way: the old key and the repositories linking it."""
        digest = doomed["pk"].split("#", 1)[1]
        return {"pk": f"{TOMBSTONE}{digest}", "sk": doomed["key"], "key": doomed["key"], "size": doomed["size"],
                "repos": doomed.get("repos") or None}

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

    def link_existing(self, repo: str, blob: BlobRecord, upload: UploadState | None) -> str:
        """Link a stored blob into `repo` (a mount, or a push of bytes already stored), mark it
        touched for the collector's grace period, and retire the upload if there is one.

        Returns "linked", "blob-gone" (the collector is removing or has removed it, or the
        record now holds another key) or "upload-gone".
        """
        touch = self._blob_update(blob.digest, "SET touched = :now ADD repos :repos", f"{_BLOB_USABLE} AND #key = :key",
                                  {":now": int(time.time()), ":repos": {repo}, ":key": blob.key})
        actions = [touch, self._link_put(repo, blob)]
        if upload is not None:
            actions.append(self._upload_delete(upload))
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
            "annotations": _annotations_text(record.annotations),
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
            annotations=_annotations_read(item.get("annotations")),
            created=item.get("created"),
        )

    def _put(self, values: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.table, "Item": to_item(values)}
        if condition:
            put["ConditionExpression"] = condition
        return {"Put": put}

    def _tag_put(self, repo: str, tag: str, values: dict[str, Any], immutable: bool) -> dict[str, Any]:
        action = self._put({"pk": repo_pk(repo), "sk": tag_sk(tag), **values})
        if immutable:
            # Race-free immutability: the tag is written only if absent or naming this digest.
            action["Put"].update(ConditionExpression="attribute_not_exists(pk) OR #digest = :digest",
                                 ExpressionAttributeNames={"#digest": "digest"},
                                 ExpressionAttributeValues=to_item({":digest": values["digest"]}))
        return action

    def _tag_taken(self, repo: str, tag: str) -> TagTaken:
        current = self.get_tag(repo, tag)
        return TagTaken(tag, current.digest if current else None)

    def put_manifest(self, repo: str, record: ManifestRecord, tag: str | None, blobs: Sequence[str] = (),
                     immutable_tag: bool = False) -> bool:
        """Store a pushed manifest with its tag (a copy, so GET by tag is one read), referrer
        and catalog entries. A manifest new to the repository counts its `blobs` in, in the
        same transaction; one already there is not counted again: only its push time and the
        tag change. Returns whether it was new.

        Raises MissingBlobs when a blob is gone or unlinked, TagTaken when `immutable_tag` and
        the tag names another digest.
        """
        blobs = list(dict.fromkeys(blobs))
        for _ in range(_PUSH_ATTEMPTS):
            if self._put_new_manifest(repo, record, tag, blobs, immutable_tag):
                return True
            stored = self._get(repo_pk(repo), f"manifest#{record.digest}")
            if stored is not None and self._push_again(repo, stored, tag, immutable_tag):
                return False
        raise RuntimeError(f"manifest {record.digest} kept being deleted while pushed")

    def _put_new_manifest(self, repo: str, record: ManifestRecord, tag: str | None, blobs: list[str],
                          immutable_tag: bool) -> bool:
        """False when the manifest is already in the repository."""
        pk, sk = repo_pk(repo), f"manifest#{record.digest}"
        values = self._manifest_values(record)
        actions = [self._put({"pk": pk, "sk": sk, **values}, "attribute_not_exists(pk)")]
        if tag is not None:
            actions.append(self._tag_put(repo, tag, values, immutable_tag))
        if record.subject:
            actions.append(self._put({
                "pk": pk, "sk": f"referrer#{record.subject}#{record.digest}",
                "digest": record.digest, "media_type": record.media_type, "size": record.size,
                "artifact_type": record.artifact_type, "annotations": _annotations_text(record.annotations),
            }))
        actions.append(self._put({"pk": CATALOG, "sk": pk}))
        room = TRANSACTION_LIMIT - len(actions)
        inline, early = blobs[:room], blobs[room:]
        if early:
            if self._get(pk, sk) is not None:
                return False
            self._count_early(repo, early)
        counting = self._references(repo, inline, +1)
        try:
            self._transact(actions + counting)
            return True
        except self._db.exceptions.TransactionCanceledException as error:
            reasons = cancellation_reasons(error)
        self._transact_all(self._references(repo, early, -1))
        if reasons[0] == FAILED:
            return False
        if tag is not None and reasons[1] == FAILED:
            raise self._tag_taken(repo, tag)
        missing = [d for d, r in zip(inline, reasons[len(actions):], strict=False) if r == FAILED]
        if missing:
            raise MissingBlobs(missing)
        raise RuntimeError(f"manifest transaction cancelled: {reasons}")

    def _push_again(self, repo: str, stored: dict[str, Any], tag: str | None, immutable_tag: bool) -> bool:
        """A push of a manifest the repository holds: refresh its push time and (re)write the
        tag with a copy of the stored item. False if the stored item changed meanwhile."""
        pk = repo_pk(repo)
        values = self._manifest_values(self._manifest(stored))
        same_body = "#body_key = :body_key" if stored.get("body_key") else "attribute_not_exists(#body_key)"
        touch = {"Update": {
            "TableName": self.table, "Key": to_item({"pk": pk, "sk": f"manifest#{stored['digest']}"}),
            "UpdateExpression": "SET #created = :now",
            "ConditionExpression": f"#created = :created AND {same_body}",
            "ExpressionAttributeNames": {"#created": "created", "#body_key": "body_key"},
            "ExpressionAttributeValues": to_item({":now": values["created"], ":created": stored.get("created"),
                                                  ":body_key": stored.get("body_key")}),
        }}
        actions = [touch]
        if tag is not None:
            actions.append(self._tag_put(repo, tag, values, immutable_tag))
        actions.append(self._put({"pk": CATALOG, "sk": pk}))
        try:
            self._transact(actions)
            return True
        except self._db.exceptions.TransactionCanceledException as error:
            reasons = cancellation_reasons(error)
        if reasons[0] == FAILED:
            return False
        if tag is not None and reasons[1] == FAILED:
            raise self._tag_taken(repo, tag)
        raise RuntimeError(f"manifest transaction cancelled: {reasons}")

    def get_manifest(self, repo: str, digest: str) -> ManifestRecord | None:
        item = self._get(repo_pk(repo), f"manifest#{digest}")
        return self._manifest(item) if item else None

    def get_tag(self, repo: str, tag: str) -> ManifestRecord | None:
        item = self._get(repo_pk(repo), tag_sk(tag))
        return self._manifest(item) if item else None

    def delete_tag(self, repo: str, tag: str) -> bool:
        return self._delete_existing(repo_pk(repo), tag_sk(tag))

    def delete_manifest(self, repo: str, record: ManifestRecord, blobs: Sequence[str] = (),
                        pushed: int | None = None) -> bool:
        """Delete a manifest, the tags that still point at it, and its referrer entry, and
        count its `blobs` out. With `pushed`: only if it was not pushed again since then (the
        collector's retention must not remove a manifest someone has just tagged)."""
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
        if pushed is not None:
            first["Delete"].update(ConditionExpression="#created = :pushed",
                                   ExpressionAttributeNames={"#created": "created"},
                                   ExpressionAttributeValues=to_item({":pushed": pushed}))
        # Counted out with the delete itself where they fit: should later batches not run,
        # blobs stay over-counted (kept too long), never under-counted (lost).
        actions = [first] + self._references(repo, list(dict.fromkeys(blobs)), -1)
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
        # False when deleted (or pushed again) concurrently; tags re-pointed meanwhile keep
        # their new target.
        return self._transact_all(actions, first_required=True)

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
        return [{**item, "annotations": _annotations_read(item.get("annotations"))}
                for item in self._query(repo_pk(repo), f"referrer#{subject}#")]
