"""Direct uploads (docs/direct-upload.md): the client sends a big blob's parts straight to S3
through presigned URLs; the registry plans the parts, completes the multipart upload and
hands the object to the verifier. Lambda carries none of the bytes."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from chalicelib.digest import resumable
from chalicelib.digest.digests import Digest
from chalicelib.errors import Oci, RegistryError
from chalicelib.numbers import whole_number
from chalicelib.storage.dynamo import MetadataStore
from chalicelib.storage.records import BlobRecord
from chalicelib.storage.s3 import BlobStore, MissingObject, PartsRefused
from chalicelib.uploads.parts import MAX_SIZE, MAX_URLS, PartPlan
from chalicelib.uploads.service import Uploads
from chalicelib.uploads.state import Direct, UploadState


def plan(state: UploadState) -> PartPlan:
    assert state.direct is not None
    return PartPlan(state.direct.size, state.direct.part_size)


def fail(blobs: BlobStore, meta: MetadataStore, state: UploadState) -> None:
    """The object is not the blob claimed: the upload ends failed (its status says so) and the
    object goes, unless the upload moved on meanwhile (then it is not this request's to end)."""
    assert state.direct is not None
    failed = replace(state, direct=replace(state.direct, phase="failed"))
    if meta.commit_upload(failed, expected_offset=state.offset, from_phase="verifying"):
        blobs.delete([state.object_key])


class DirectUploads:
    def __init__(self, blobs: BlobStore, meta: MetadataStore, uploads: Uploads) -> None:
        self._blobs = blobs
        self._meta = meta
        self._uploads = uploads

    def start(self, repo: str, size_text: str, digest: Digest | None) -> UploadState | BlobRecord:
        """A new direct upload; or, when the repository already holds `digest`, that blob."""
        if digest is not None:
            linked = self._meta.get_link(repo, str(digest))
            if linked is not None:
                return linked
        size = whole_number(size_text, MAX_SIZE + 1)
        try:
            if size is None:
                raise ValueError("the size must be written in ASCII digits")
            parts = PartPlan.for_size(size)
        except ValueError as error:
            raise RegistryError(Oci.SIZE_INVALID, f"berth-direct: {error}", detail={"size": size_text[:32]}) from None
        state = replace(UploadState.new(repo, None), direct=Direct(parts.size, parts.part_size))
        state = replace(state, multipart_id=self._blobs.start_multipart(state.object_key))
        self._meta.create_upload(state)
        return state

    def listing(self, state: UploadState, first: int, count: int) -> dict[str, Any]:
        """Presigned URLs for parts first..first+count-1, and what S3 already holds."""
        self._require(state, "open")
        parts = plan(state)
        if not 1 <= first <= parts.count or count < 1:
            raise RegistryError(Oci.BLOB_UPLOAD_INVALID, f"first must be a part number (1 to {parts.count}) "
                                                         "and count positive")
        last = min(parts.count, first + min(count, MAX_URLS) - 1)
        uploaded = self._held(state)
        return {
            "partSize": parts.part_size,
            "partCount": parts.count,
            "uploaded": [{"number": n, "size": size} for n, (_, size) in sorted(uploaded.items())],
            "urls": [{"number": n, "url": self._blobs.presigned_upload_part(state.object_key, state.multipart_id or "",
                                                                             n)}
                     for n in range(first, last + 1)],
        }

    def finish(self, state: UploadState, digest: Digest) -> UploadState | BlobRecord:
        """Complete the object and leave it to the verifier, or link the repository's copy."""
        if state.direct is not None and state.direct.phase == "verifying":
            return state  # a finish repeated while the first one's object is being verified
        self._require(state, "open")
        linked = self._meta.get_link(state.repo, str(digest))
        if linked is not None:
            if self._meta.retire_upload(state):
                self._uploads.discard(state)
            return linked
        uploaded = self._held(state)
        problems = plan(state).problems({n: size for n, (_, size) in uploaded.items()})
        if problems:
            raise RegistryError(Oci.BLOB_UPLOAD_INVALID, "not every part is uploaded as planned", detail=problems)
        assert state.direct is not None
        verifying = replace(state, direct=replace(state.direct, phase="verifying", digest=str(digest),
                                                   claim=secrets.token_hex(8)),
                            hash_state=resumable.ResumableSha256().state() if resumable.available() else None)
        # Recorded before the object exists, so the verifier S3 wakes for finds its digest; and
        # only out of "open", so that of racing finishes one alone completes the object.
        if not self._uploads.commit(verifying, expected_offset=state.offset, from_phase="open"):
            raise RegistryError(Oci.BLOB_UPLOAD_UNKNOWN, detail={"uuid": state.uuid})
        etag = self._complete(state, verifying, {n: etag for n, (etag, _) in uploaded.items()})
        # Parts named by ETag are the ones checked; S3's own count of the object's bytes says so.
        completed = self._blobs.head(state.object_key, etag)
        if completed is None or completed[1] != state.direct.size:
            fail(self._blobs, self._meta, verifying)
            raise RegistryError(Oci.SIZE_INVALID, "the completed object is not of the declared size",
                                detail={"declared": state.direct.size, "stored": completed and completed[1]})
        return verifying

    def _held(self, state: UploadState) -> dict[int, tuple[str, int]]:
        """The parts S3 holds; none at all once the multipart upload is over (completed by a
        concurrent finish, aborted by a cancel or by the bucket's lifecycle rule)."""
        try:
            return self._blobs.list_parts(state.object_key, state.multipart_id or "")
        except MissingObject:
            raise RegistryError(Oci.BLOB_UPLOAD_UNKNOWN, detail={"uuid": state.uuid}) from None

    def _complete(self, state: UploadState, verifying: UploadState, etags: dict[int, str]) -> str:
        """Complete the object of exactly the parts that were checked (their ETags say which);
        returns its ETag. A part sent again meanwhile makes S3 refuse: the upload opens again."""
        try:
            return self._blobs.complete_parts(state.object_key, state.multipart_id or "", etags)
        except PartsRefused:
            self._meta.commit_upload(state, expected_offset=verifying.offset, from_phase="verifying")
            raise RegistryError(Oci.BLOB_UPLOAD_INVALID, "a part was sent again while the upload was finishing: "
                                                         "finish it again", detail={"uuid": state.uuid}) from None
        except MissingObject:  # cancelled meanwhile
            raise RegistryError(Oci.BLOB_UPLOAD_UNKNOWN, detail={"uuid": state.uuid}) from None
        except Exception:
            # open again: finish can be retried
            self._meta.commit_upload(state, expected_offset=verifying.offset, from_phase="verifying")
            raise

    def check(self, state: UploadState) -> None:
        """A failed verification is the finish's late answer."""
        if state.direct is not None and state.direct.phase == "failed":
            raise RegistryError(Oci.DIGEST_INVALID, "the uploaded bytes do not match the digest and size",
                                detail={"digest": state.direct.digest, "size": state.direct.size})

    @staticmethod
    def _require(state: UploadState, phase: str) -> None:
        if state.direct is None:
            raise RegistryError(Oci.BLOB_UPLOAD_INVALID, "not a direct upload (start one with ?berth-direct=<size>)")
        if state.direct.phase != phase:
            raise RegistryError(Oci.BLOB_UPLOAD_INVALID, f"the upload is {state.direct.phase}, not {phase}")
