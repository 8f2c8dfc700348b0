"""Manifest records (`repo#<name>` / `manifest#<digest>`), tags (copies of the manifest they
name, so a pull by tag is one read), referrer entries and the catalog. A manifest's push and
delete count its blobs in and out in the same transaction (storage/blobs.py)."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from chalicelib.storage.blobs import PUSH_ATTEMPTS, BlobRecords, MissingBlobs, references
from chalicelib.storage.bodies import UnsettledBodies, unsettled_body
from chalicelib.storage.keys import (
    CATALOG,
    manifest_sk,
    referrer_sk,
    repo_pk,
    tag_sk,
)
from chalicelib.storage.records import ManifestRecord, Page
from chalicelib.storage.table import FAILED, TRANSACTION_LIMIT, cancellation_reasons, to_item

# Each push of a manifest makes a delete of it read again: enough for a burst of re-tags.
_DELETE_ATTEMPTS = 20


class TagTaken(Exception):
    """An immutable tag already names another manifest."""

    def __init__(self, tag: str, digest: str | None) -> None:
        super().__init__(tag)
        self.tag = tag
        self.digest = digest


def _annotations_text(annotations: dict[str, str] | None) -> str | None:
    """Annotations are kept as JSON text: a DynamoDB map cannot have the empty key, which the
    spec allows."""
    return json.dumps(annotations, separators=(",", ":")) if annotations else None


def annotations_size(annotations: dict[str, str] | None) -> int:
    """Bytes the annotations take in each item that holds them."""
    return len(_annotations_text(annotations) or "")


def _annotations_read(text: str | None) -> dict[str, str] | None:
    return json.loads(text) if text else None


def manifest_values(record: ManifestRecord) -> dict[str, Any]:
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
        "version": uuid.uuid4().hex[:16],  # never reused: a manifest deleted and pushed again is another
    }


def manifest_record(item: dict[str, Any]) -> ManifestRecord:
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
        version=item.get("version"),
    )


class ManifestRecords(BlobRecords, UnsettledBodies):

    def missing_manifests(self, repo: str, digests: Iterable[str]) -> list[str]:
        """Consistent: a client pushes an index right after its manifests."""
        wanted = list(dict.fromkeys(manifest_sk(d) for d in digests))
        found = {i["sk"] for i in self._batch_get([(repo_pk(repo), sk) for sk in wanted], "sk", consistent=True)}
        return [sk.split("#", 1)[1] for sk in wanted if sk not in found]

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
        for _ in range(PUSH_ATTEMPTS):
            if self._put_new_manifest(repo, record, tag, blobs, immutable_tag):
                return True
            stored = self._get(repo_pk(repo), manifest_sk(record.digest), consistent=True)
            if stored is not None and self._push_again(repo, stored, tag, immutable_tag):
                return False
        raise RuntimeError(f"manifest {record.digest} kept being deleted while pushed")

    def _put_new_manifest(self, repo: str, record: ManifestRecord, tag: str | None, blobs: list[str],
                          immutable_tag: bool) -> bool:
        """False when the manifest is already in the repository."""
        pk, sk = repo_pk(repo), manifest_sk(record.digest)
        values = manifest_values(record)
        actions = [self._put({"pk": pk, "sk": sk, **values}, "attribute_not_exists(pk)")]
        if tag is not None:
            actions.append(self._tag_put(repo, tag, values, immutable_tag))
        if record.subject:
            actions.append(self._put({
                "pk": pk, "sk": referrer_sk(record.subject, record.digest),
                "digest": record.digest, "media_type": record.media_type, "size": record.size,
                "artifact_type": record.artifact_type, "annotations": _annotations_text(record.annotations),
            }))
        actions.append(self._put({"pk": CATALOG, "sk": pk}))
        room = TRANSACTION_LIMIT - len(actions)
        inline, early = blobs[:room], blobs[room:]
        if early:
            if self._get(pk, sk, consistent=True) is not None:
                return False
            self._count_early(repo, early)
        counting = references(self.table, repo, inline, +1)
        try:
            self._transact(actions + counting)
            return True
        except self._db.exceptions.TransactionCanceledException as error:
            reasons = cancellation_reasons(error)
        self._transact_all(references(self.table, repo, early, -1))
        if reasons[0] == FAILED:
            return False
        if tag is not None and reasons[1] == FAILED:
            raise self._tag_taken(repo, tag)
        missing = [d for d, r in zip(inline, reasons[len(actions):], strict=False) if r == FAILED]
        if missing:
            raise MissingBlobs(missing)
        raise RuntimeError(f"manifest transaction cancelled: {reasons}")

    def _push_again(self, repo: str, stored: dict[str, Any], tag: str | None, immutable_tag: bool) -> bool:
        """A push of a manifest the repository holds: refresh its push time, give it a new
        version and (re)write the tag with a copy of the stored item. False if the manifest
        was deleted (or deleted and pushed anew) meanwhile."""
        pk = repo_pk(repo)
        values = manifest_values(manifest_record(stored))
        same_body = "#body_key = :body_key" if stored.get("body_key") else "attribute_not_exists(#body_key)"
        touch = {"Update": {
            "TableName": self.table, "Key": to_item({"pk": pk, "sk": manifest_sk(stored["digest"])}),
            "UpdateExpression": "SET #created = :now, #version = :version",
            "ConditionExpression": f"attribute_exists(pk) AND {same_body}",
            "ExpressionAttributeNames": {"#created": "created", "#version": "version", "#body_key": "body_key"},
            "ExpressionAttributeValues": to_item({":now": values["created"], ":version": values["version"],
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

    def note_manifest_body(self, repo: str, digest: str, key: str) -> str:
        """Before a push writes the body of `digest` in `repo` to S3 at `key`; the note, for
        `settle_body`."""
        return self.note_body((repo_pk(repo), manifest_sk(digest)), key)

    def get_manifest(self, repo: str, digest: str) -> ManifestRecord | None:
        item = self._get(repo_pk(repo), manifest_sk(digest))
        return manifest_record(item) if item else None

    def get_tag(self, repo: str, tag: str) -> ManifestRecord | None:
        item = self._get(repo_pk(repo), tag_sk(tag))
        return manifest_record(item) if item else None

    def delete_tag(self, repo: str, tag: str) -> bool:
        return self._delete_existing(repo_pk(repo), tag_sk(tag))

    def delete_manifest(self, repo: str, digest: str, blobs: Sequence[str] = (),
                        only_version: str | None = None) -> ManifestRecord | None:
        """Delete a manifest with every tag naming it and its referrer entry, and count its
        `blobs` out; returns what was deleted, None when there was nothing to delete.

        Linearizable with pushes: every push of the manifest (under a new tag, or again)
        writes a new version on it, and the delete commits only if the version it read is
        still there, with the tags it read after it, so a tag written meanwhile fails the
        delete, which reads again. With `only_version` (retention, deciding on what it read
        earlier): only that version, and only while no tag names it.
        """
        pk, sk = repo_pk(repo), manifest_sk(digest)
        counted_out = references(self.table, repo, list(dict.fromkeys(blobs)), -1)
        for attempt in range(_DELETE_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0, 0.005 * attempt))  # pushes of it keep coming: let them pass
            item = self._get(pk, sk, consistent=True)
            if item is None or only_version not in (None, item.get("version")):
                return None
            record = manifest_record(item)
            tags = [t["sk"] for t in self._query(pk, "tag#", projection="sk, digest", consistent=True)
                    if t.get("digest") == digest]
            if only_version is not None and tags:
                return None
            unchanged = {"TableName": self.table, "Key": to_item({"pk": pk, "sk": sk}),
                         "ConditionExpression": "#version = :version",
                         "ExpressionAttributeNames": {"#version": "version"},
                         "ExpressionAttributeValues": to_item({":version": record.version})}
            head = [{"Delete": unchanged}]
            if record.body_key:  # deleted after the transaction: by this request, or by the purge
                head.append(self._put(unsettled_body((pk, sk), record.body_key)))
            if record.subject:
                referrer = {"pk": pk, "sk": referrer_sk(record.subject, digest)}
                head.append({"Delete": {"TableName": self.table, "Key": to_item(referrer)}})
            # Only while the tag still names this manifest: a tag moved meanwhile stays.
            untag = [{"Delete": {
                "TableName": self.table, "Key": to_item({"pk": pk, "sk": tag}),
                "ConditionExpression": "attribute_not_exists(pk) OR #digest = :digest",
                "ExpressionAttributeNames": {"#digest": "digest"},
                "ExpressionAttributeValues": to_item({":digest": digest}),
            }} for tag in tags]
            if len(head) + len(untag) > TRANSACTION_LIMIT:
                # Too many tags for one transaction: they go first, each batch only while the
                # manifest is unchanged; the manifest goes last, so a tag pushed in between
                # makes it start over rather than leave that tag behind.
                if not self._untag_while_unchanged(unchanged, untag):
                    continue
                untag = []
            room = TRANSACTION_LIMIT - len(head) - len(untag)
            # Counted out with the delete itself where they fit: should later batches not run,
            # blobs stay over-counted (kept too long), never under-counted (lost).
            inline, later = counted_out[:room], counted_out[room:]
            try:
                self._transact(head + untag + inline)
            except self._db.exceptions.TransactionCanceledException as error:
                reasons = cancellation_reasons(error)
                fixed = len(head) + len(untag)
                # A count-out fails only for a blob record that is gone: nothing to count.
                gone = {id(a) for a, r in zip(inline, reasons[fixed:], strict=False) if r == FAILED}
                counted_out = [a for a in counted_out if id(a) not in gone]
                continue
            self._transact_all(later)
            return record
        raise RuntimeError(f"manifest {digest} kept being pushed while deleted")

    def _untag_while_unchanged(self, unchanged: dict[str, Any], untag: list[dict[str, Any]]) -> bool:
        """Delete tags in batches, each on condition that the manifest has the version read."""
        for start in range(0, len(untag), TRANSACTION_LIMIT - 1):
            try:
                self._transact([{"ConditionCheck": unchanged}, *untag[start : start + TRANSACTION_LIMIT - 1]])
            except self._db.exceptions.TransactionCanceledException:
                return False
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
        return [{**item, "annotations": _annotations_read(item.get("annotations"))}
                for item in self._query(repo_pk(repo), f"referrer#{subject}#")]
