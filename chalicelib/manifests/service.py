"""Pushing, fetching and deleting manifests; tags; referrers."""

from __future__ import annotations

from typing import Any

from chalicelib.api.errors import Oci, RegistryError
from chalicelib.digest.digests import Digest, looks_like_digest
from chalicelib.manifests.parse import Manifest, parse_manifest
from chalicelib.naming import check_tag, valid_tag
from chalicelib.storage.dynamo import MetadataStore
from chalicelib.storage.records import ManifestRecord
from chalicelib.storage.s3 import BlobStore

# Bodies up to this size live in the table (one read serves a pull by tag); larger ones in S3.
INLINE_LIMIT = 256 * 1024


def manifest_key(digest: Digest) -> str:
    return f"manifests/{digest.algorithm}/{digest.hex}"


class Manifests:
    def __init__(self, blobs: BlobStore, meta: MetadataStore) -> None:
        self._blobs = blobs
        self._meta = meta

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
        self._check_references(repo, manifest)
        inline = len(body) <= INLINE_LIMIT
        if not inline:
            self._blobs.put(manifest_key(digest), body)
        record = ManifestRecord(
            digest=str(digest),
            media_type=manifest.media_type,
            size=len(body),
            body=body if inline else None,
            body_key=None if inline else manifest_key(digest),
            subject=str(manifest.subject.digest) if manifest.subject else None,
            artifact_type=manifest.referrer_artifact_type(),
            annotations=manifest.annotations,
        )
        self._meta.put_manifest(repo, record, tag)
        return record, manifest

    def _check_references(self, repo: str, manifest: Manifest) -> None:
        missing_blobs = self._meta.missing_links(repo, [str(d.digest) for d in manifest.blobs])
        if missing_blobs:
            raise RegistryError(Oci.MANIFEST_BLOB_UNKNOWN, "manifest references blobs not in this repository",
                                detail={"digests": missing_blobs})
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
        record = self.find(repo, reference)
        if not self._meta.delete_manifest(repo, record):
            raise RegistryError(Oci.MANIFEST_UNKNOWN, detail={"reference": reference})

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
