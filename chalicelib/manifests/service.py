"""Pushing, fetching and deleting manifests; tags; referrers."""

from __future__ import annotations

import uuid
from typing import Any

from chalicelib.digest.digests import Digest, looks_like_digest
from chalicelib.errors import Oci, RegistryError
from chalicelib.lifecycle.policy import Lifecycle
from chalicelib.manifests.parse import Manifest, parse_manifest
from chalicelib.naming import check_tag, valid_tag
from chalicelib.storage.blobs import MissingBlobs
from chalicelib.storage.bodies import drop_body
from chalicelib.storage.dynamo import MetadataStore
from chalicelib.storage.manifests import TagTaken, annotations_size
from chalicelib.storage.records import ManifestRecord
from chalicelib.storage.s3 import BlobStore

# Bodies up to this size live in the table (one read serves a pull by tag); larger ones in S3.
INLINE_LIMIT = 256 * 1024
ANNOTATIONS_LIMIT = 320 * 1024  # as stored (JSON, non-ASCII escaped): what an item holds besides, with room


def manifest_key(digest: Digest) -> str:
    """Unique per push, like blob keys: deleting one repository's manifest (or a push that
    turns out to be a repeat) can then remove its object without touching anyone else's."""
    return f"manifests/{digest.algorithm}/{digest.hex}.{uuid.uuid4().hex[:12]}"


class Manifests:
    def __init__(self, blobs: BlobStore, meta: MetadataStore, lifecycle: Lifecycle | None = None) -> None:
        self._blobs = blobs
        self._meta = meta
        self._lifecycle = lifecycle or Lifecycle()

    def put(self, repo: str, reference: str, body: bytes, content_type: str | None) -> tuple[ManifestRecord, Manifest]:
        manifest = parse_manifest(body, content_type)
        tag = None
        if looks_like_digest(reference):
            digest = Digest.parse(reference)
            if not digest.matches(body):
                raise RegistryError(Oci.DIGEST_INVALID, "manifest body does not match the digest in the URL",
                                    detail={"digest": reference})
        else:
            tag = check_tag(reference)
            digest = Digest.of(body)
        self._check_children(repo, manifest)
        # The manifest's, tag's and referrer's items each hold the annotations, and DynamoDB
        # items stop at 400 KB: room for them, and the body goes to S3 if both do not fit.
        indexed = annotations_size(manifest.annotations)
        if indexed > ANNOTATIONS_LIMIT:
            raise RegistryError(Oci.MANIFEST_INVALID, f"the manifest's annotations take {indexed} bytes as stored; "
                                f"this registry indexes at most {ANNOTATIONS_LIMIT}", detail={"size": indexed})
        inline = len(body) + indexed <= INLINE_LIMIT
        body_key = None if inline else manifest_key(digest)
        if body_key:
            note = self._meta.note_manifest_body(repo, str(digest), body_key)
            self._blobs.put(body_key, body)
        record = ManifestRecord(
            digest=str(digest),
            media_type=manifest.media_type,
            size=len(body),
            body=body if inline else None,
            body_key=body_key,
            subject=str(manifest.subject.digest) if manifest.subject else None,
            artifact_type=manifest.referrer_artifact_type(),
            annotations=manifest.annotations,
        )
        policy = self._lifecycle.policy_for(repo)
        stored: bool | None = None  # whether the record names `body_key`; None: not known (a failure)
        try:
            stored = self._meta.put_manifest(repo, record, tag, [str(d.digest) for d in manifest.blobs],
                                             immutable_tag=bool(tag and policy and policy.tag_is_immutable(tag)))
        except TagTaken as taken:
            stored = False
            raise RegistryError(
                Oci.DENIED, f"tag {taken.tag} is immutable in this repository and names another manifest; "
                "push under a new tag", detail={"tag": taken.tag, "digest": taken.digest}) from None
        except MissingBlobs as gone:
            stored = False
            raise RegistryError(Oci.MANIFEST_BLOB_UNKNOWN, "manifest references blobs not in this repository",
                                detail={"digests": gone.digests}) from None
        finally:
            # A transaction whose answer was lost may have stored the record naming the body:
            # then the body stays, unsettled, for the purge to look at.
            if body_key and stored:
                self._meta.settle_body(body_key, note)
            elif body_key and stored is not None:
                drop_body(self._meta, self._blobs, body_key)  # refused, or the stored manifest keeps its own copy
        return record, manifest

    def _check_children(self, repo: str, manifest: Manifest) -> None:
        """An index's manifests must be in the repository. (An image's blobs are checked by
        the transaction that stores it and counts them: see MetadataStore.put_manifest.)"""
        missing_children = self._meta.missing_manifests(repo, [str(d.digest) for d in manifest.children])
        if missing_children:
            raise RegistryError(Oci.MANIFEST_BLOB_UNKNOWN, "index references manifests not in this repository",
                                detail={"digests": missing_children})

    def find(self, repo: str, reference: str) -> ManifestRecord:
        if looks_like_digest(reference):
            record = self._meta.get_manifest(repo, str(Digest.parse(reference)))
        else:
            # A reference that cannot be a tag names no manifest: 404, as the spec wants.
            record = self._meta.get_tag(repo, reference) if valid_tag(reference) else None
        if record is None:
            raise RegistryError(Oci.MANIFEST_UNKNOWN, detail={"reference": reference})
        return record

    def body(self, record: ManifestRecord) -> bytes:
        if record.body is not None:
            return record.body
        return self._blobs.read(record.body_key or "")

    def delete(self, repo: str, reference: str) -> None:
        if not looks_like_digest(reference):
            if not (valid_tag(reference) and self._meta.delete_tag(repo, reference)):
                raise RegistryError(Oci.MANIFEST_UNKNOWN, detail={"reference": reference})
            return
        if not self.remove(repo, self.find(repo, reference)):
            raise RegistryError(Oci.MANIFEST_UNKNOWN, detail={"reference": reference})

    def remove(self, repo: str, record: ManifestRecord, only_as_read: bool = False) -> bool:
        """Delete a manifest with its tags and count its blobs out; False when there was
        nothing to delete. `only_as_read` (retention, whose decision stands only on what it
        read): only if `record` is still the stored version, and untagged."""
        version = (record.version or "-") if only_as_read else None  # "-" is no version: nothing matches
        deleted = self._meta.delete_manifest(repo, record.digest, self.blobs_of(record), only_version=version)
        if deleted is None:
            return False
        if deleted.body_key:
            drop_body(self._meta, self._blobs, deleted.body_key)
        return True

    def parsed(self, record: ManifestRecord) -> Manifest:
        """A stored manifest, parsed again (it was valid when pushed)."""
        return parse_manifest(self.body(record), record.media_type)

    def blobs_of(self, record: ManifestRecord) -> list[str]:
        return [str(d.digest) for d in self.parsed(record).blobs]

    def referrers(self, repo: str, subject: Digest, artifact_type: str | None) -> list[dict[str, Any]]:
        descriptors = []
        for item in self._meta.list_referrers(repo, str(subject)):
            if artifact_type and item.get("artifact_type") != artifact_type:
                continue
            descriptor: dict[str, Any] = {"mediaType": item["media_type"], "digest": item["digest"],
                                          "size": item["size"]}
            if item.get("artifact_type"):
                descriptor["artifactType"] = item["artifact_type"]
            if item.get("annotations"):
                descriptor["annotations"] = item["annotations"]
            descriptors.append(descriptor)
        return descriptors
