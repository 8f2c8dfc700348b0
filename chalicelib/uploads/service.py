"""Runs blob uploads: chunks into S3, state into DynamoDB, verification, promotion.

Bytes are written to S3 once per chunk. A finished upload is verified from the saved
SHA-256 state without reading the blob back, then promoted by recording digest -> object:
the object stays where the upload wrote it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

from chalicelib.digest import resumable
from chalicelib.digest.digests import Digest
from chalicelib.errors import Oci, RegistryError
from chalicelib.storage.dynamo import MetadataStore
from chalicelib.storage.records import BlobRecord
from chalicelib.storage.s3 import BlobStore, MissingObject
from chalicelib.uploads.state import MAX_PARTS, Piece, UploadState, range_header, valid_uuid

_PROMOTE_ATTEMPTS = 5
_CANCEL_ATTEMPTS = 20  # each chunk that commits first makes a cancel read again


def _sha256(hash_state: bytes | None, data: bytes) -> str:
    """The digest of a first chunk: from the running state when there is one (no second pass)."""
    hexdigest = resumable.ResumableSha256(hash_state).hexdigest() if hash_state else hashlib.sha256(data).hexdigest()
    return f"sha256:{hexdigest}"


def upload_location(repo: str, uuid: str) -> str:
    return f"/v2/{repo}/blobs/uploads/{uuid}"


class Uploads:
    def __init__(self, blobs: BlobStore, meta: MetadataStore,
                 resumable_available: Callable[[], bool] = resumable.available) -> None:
        self._blobs = blobs
        self._meta = meta
        self._resumable_available = resumable_available

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self, repo: str) -> UploadState:
        hash_state = resumable.ResumableSha256().state() if self._resumable_available() else None
        state = UploadState.new(repo, hash_state)
        self._meta.create_upload(state)
        return state

    def current(self, uuid: str) -> UploadState | None:
        """The upload as stored now; None when it is gone."""
        record = self._meta.get_upload(uuid)
        return UploadState.of(record) if record else None

    def load(self, repo: str, uuid: str) -> UploadState:
        state = self.current(uuid) if valid_uuid(uuid) else None
        if state is None or state.repo != repo:
            raise RegistryError(Oci.BLOB_UPLOAD_UNKNOWN, detail={"uuid": uuid[:64]})
        return state

    def cancel(self, state: UploadState) -> None:
        held: UploadState | None = state
        for _ in range(_CANCEL_ATTEMPTS):
            if held is None:
                raise RegistryError(Oci.BLOB_UPLOAD_UNKNOWN, detail={"uuid": state.uuid})
            if self._meta.cancel_upload(held):
                # A finished direct upload's object exists (being verified, or failed) before
                # any record, and so may the object of a finish under way.
                self.discard(held, also=[held.object_key] if held.direct or held.finishing else [])
                return
            held = self.current(state.uuid)  # a chunk or a finish moved it since it was read
        raise RuntimeError(f"upload {state.uuid} kept moving while cancelled")

    def abandon(self, state: UploadState, idle_since: int | None = None) -> bool:
        """Drop an upload nobody moved since `state` was read (the purge), nor touched since
        `idle_since`; False if it moved."""
        if not self._meta.retire_upload(state, idle_since):
            return False
        # A finish that died between assembling the blob and promoting it left the object at
        # `object_key`; with the record retired, no promotion can ever refer to it.
        self.discard(state, also=[state.object_key])
        return True

    def discard(self, state: UploadState, also: Sequence[str] = ()) -> None:
        """Delete what an upload stored: its multipart upload, its pieces, and `also`."""
        if state.multipart_id:
            self._blobs.abort_multipart(state.object_key, state.multipart_id)
        self._blobs.delete([p.key for p in state.pieces] + list(also))

    # ---- chunks --------------------------------------------------------------------------

    def append_first(self, repo: str, uuid: str, data: bytes) -> UploadState | None:
        """The common case, one chunk into a fresh upload (docker, podman, skopeo send a whole
        layer in one PATCH), written without reading the record first: the commit's condition
        (offset 0, this repository) is the check. None when that guess was wrong; the caller
        then takes the ordinary path."""
        if not data or not valid_uuid(uuid):
            return None
        hash_state = resumable.ResumableSha256().state() if self._resumable_available() else None
        fresh = UploadState(uuid=uuid, repo=repo, hash_state=hash_state)
        if fresh.fills_part(len(data)):
            return None
        hash_state = self._hashed(fresh, data)
        piece = Piece(fresh.piece_key(0, _sha256(hash_state, data)), len(data))
        new = fresh.with_piece(piece, hash_state)
        with self._unwritten_on_failure(fresh, new, started=False):
            self._blobs.put(piece.key, data)
        if self.commit(new, expected_offset=0):
            return new
        self._unwrite(fresh, new, started=False)
        return None

    def append(self, state: UploadState, data: bytes, start: int | None = None) -> UploadState:
        """Add a chunk at the upload's current offset (or refuse it with 416)."""
        if start is not None and start != state.offset:
            raise self._out_of_order(state)
        if not data:
            return state
        hash_state = self._hashed(state, data)
        if state.fills_part(len(data)):
            try:
                new, started = self._write_part(state, data, hash_state)
            except MissingObject:
                # Another request changed the upload first: folded the pieces into a part, or finished it.
                raise self._changed(state, self.current(state.uuid)) from None
            if not self.commit(new, expected_offset=state.offset):
                self._unwrite(state, new, started)
                raise self._changed(state, self.current(state.uuid))
            self._blobs.delete([p.key for p in state.pieces])
            return new
        first = _sha256(hash_state, data) if state.offset == 0 else None
        new = state.with_piece(Piece(state.piece_key(state.offset, first), len(data)), hash_state)
        with self._unwritten_on_failure(state, new, started=False):
            self._blobs.put(new.pieces[-1].key, data)
        if not self.commit(new, expected_offset=state.offset):
            self._unwrite(state, new, started=False)
            raise self._changed(state, self.current(state.uuid))
        return new

    def commit(self, new: UploadState, expected_offset: int, from_phase: str | None = None) -> bool:
        """Commit an upload's new state (a chunk's, or a direct upload's claim of a phase);
        False when another request moved the upload first. A write whose answer was lost may
        have landed, and botocore's retry of one that did fails its own condition: the record
        then holds exactly `new` (piece keys, part numbers and a direct claim are unique to
        the request that made them), and that is a commit."""
        try:
            if self._meta.commit_upload(new, expected_offset=expected_offset, from_phase=from_phase):
                return True
        except Exception:
            if self._holds(new):
                return True
            raise
        return self._holds(new)

    def _holds(self, new: UploadState) -> bool:
        current = self._meta.get_upload(new.uuid)
        return current is not None and \
            (current.offset, current.multipart_id, current.parts, current.pieces, current.direct) == \
            (new.offset, new.multipart_id, new.parts, new.pieces, new.direct)

    def _unwrite(self, state: UploadState, new: UploadState, started: bool) -> None:
        """Remove what a request wrote towards `new`, which no record names: the pieces new
        since `state`, and the multipart upload if it `started` it."""
        if started and new.multipart_id:
            self._blobs.abort_multipart(state.object_key, new.multipart_id)
        self._blobs.delete([p.key for p in new.pieces if p not in state.pieces])

    @contextlib.contextmanager
    def _unwritten_on_failure(self, state: UploadState, new: UploadState, started: bool) -> Iterator[None]:
        """Writes before the commit that fail (or whose answer is lost) are undone, all of them:
        until the commit nothing names them. The failure is what the client hears about."""
        try:
            yield
        except Exception:
            with contextlib.suppress(Exception):
                self._unwrite(state, new, started)
            raise

    def _out_of_order(self, state: UploadState) -> RegistryError:
        return RegistryError(
            Oci.RANGE_INVALID,
            f"chunk must start at offset {state.offset}",
            headers={"Location": upload_location(state.repo, state.uuid), "Range": range_header(state.offset),
                     "Docker-Upload-UUID": state.uuid},
        )

    @staticmethod
    def _hashed(state: UploadState, data: bytes) -> bytes | None:
        if state.hash_state is None:
            return None
        running = resumable.ResumableSha256(state.hash_state)
        running.update(data)
        return running.state()

    def _tail_with(self, state: UploadState, data: bytes) -> bytes:
        if not state.pieces:
            return data
        return b"".join(self._blobs.read(p.key) for p in state.pieces) + data

    def _write_part(self, state: UploadState, data: bytes, hash_state: bytes | None) -> tuple[UploadState, bool]:
        """Pieces plus this chunk become one S3 part, but for a tail the chunk may hold back
        as a new piece (UploadState.tail_to_hold). Returns the new state and whether this
        request started the multipart upload."""
        if len(state.parts) >= MAX_PARTS - 1:
            raise RegistryError(Oci.TOO_LARGE, f"an upload through this API holds at most {MAX_PARTS} parts")
        cut = len(data) - state.tail_to_hold(len(data))
        body = self._tail_with(state, data[:cut])
        number = self._part_number(state)  # before starting a multipart upload that could be orphaned
        multipart_id = state.multipart_id or self._blobs.start_multipart(state.object_key)
        new = state.with_part(multipart_id, number, cut, hash_state)
        if cut < len(data):
            new = new.with_piece(Piece(new.piece_key(new.offset), len(data) - cut), hash_state)
        started = state.multipart_id is None
        with self._unwritten_on_failure(state, new, started):
            self._blobs.upload_part(state.object_key, multipart_id, number, body)
            if cut < len(data):
                self._blobs.put(new.pieces[0].key, data[cut:])
        return new, started

    def _part_number(self, state: UploadState) -> int:
        number = self._meta.next_part_number(state.uuid)
        if number is None:
            raise MissingObject(state.object_key)  # a concurrent finish or cancel retired the upload
        if number > MAX_PARTS:  # numbers that retried or losing requests drew are spent too
            raise RegistryError(Oci.TOO_LARGE, f"this upload has used all {MAX_PARTS} S3 part numbers")
        return number

    # ---- finishing -----------------------------------------------------------------------

    def finish(self, state: UploadState, digest: Digest, data: bytes, persisted: bool = True,
               start: int | None = None) -> BlobRecord:
        """Verify and promote, with an optional last chunk. `persisted` is False for a
        monolithic POST, which has no upload record."""
        if start is not None and start != state.offset:
            raise self._out_of_order(state)
        size = state.offset + len(data)
        upload = state if persisted else None
        verified = self._verify_from_state(state, digest, data)
        if verified is False:
            self._reject(state, upload, digest)
        # Where assembling costs nothing (the lone piece is the blob), promotion's own condition
        # finds a stored copy; otherwise one read can spare writing the bytes again.
        existing = None if state.lone_piece_is_blob(len(data), str(digest)) else self._meta.get_blob(str(digest))
        if existing is not None and verified:
            # Same bytes are already stored: link them, keep nothing of this upload.
            outcome = self._meta.link_existing(state.repo, existing, upload)
            if outcome == "upload-gone":
                return self._lost(state, str(digest))
            if outcome == "linked":
                self.discard(state)
                return existing
            # "blob-gone": the collector took the stored copy meanwhile; store ours.
        try:
            key, surplus = self._assemble(state, data, str(digest), persisted)
        except MissingObject:
            return self._lost(state, str(digest))
        if not verified and not self._verify_stored(key, digest):
            self._reject(state, upload, digest, created=[key])
        return self.promote(state, BlobRecord(str(digest), key, size), upload, surplus)

    def promote(self, state: UploadState, blob: BlobRecord, upload: UploadState | None,
                 surplus: list[str]) -> BlobRecord:
        """Record the assembled blob, or link the copy a concurrent push stored first."""
        for _ in range(_PROMOTE_ATTEMPTS):
            outcome = self._promote_once(state, blob, upload)
            if outcome == "created":
                self._blobs.delete(surplus)
                return blob
            stored = self._meta.get_blob(blob.digest)
            if outcome == "exists" and stored is not None:
                # Another push of these bytes won: link its copy, unless the collector is taking
                # it, in which case ours can take its place.
                outcome = self._meta.link_existing(state.repo, stored, upload)
                if outcome == "linked":
                    self._blobs.delete(surplus + ([blob.key] if stored.key != blob.key else []))
                    return stored
            if outcome == "upload-gone":
                # Our objects are surplus, but for the one a concurrent finish recorded.
                ours = [blob.key] + surplus if stored is None or stored.key != blob.key else []
                return self._lost(state, blob.digest, ours)
        raise RuntimeError(f"blob {blob.digest} kept being collected while pushed")

    def _promote_once(self, state: UploadState, blob: BlobRecord, upload: UploadState | None) -> str:
        try:
            return self._meta.promote(state.repo, blob, upload)
        except Exception:
            # Its answer may be what was lost: our copy recorded, the upload retired, is ours.
            stored = self._meta.get_blob(blob.digest)
            if stored is not None and stored.key == blob.key and (
                    upload is None or self._meta.get_upload(upload.uuid) is None):
                return "created"
            raise

    def _lost(self, state: UploadState, digest: str, ours: Sequence[str] = ()) -> BlobRecord:
        """A finish working from `state` found the upload changed under it: what a concurrent
        finish of the same digest linked, or the error that says what happened. `ours` goes
        once the upload is gone; while it lives, a chunk moved it, and all stays."""
        current = self.current(state.uuid)
        if current is None:
            self._blobs.delete(list(ours))
            winner = self._meta.get_link(state.repo, digest)
            if winner is not None:
                return winner
        raise self._changed(state, current)

    def _changed(self, state: UploadState, current: UploadState | None) -> RegistryError:
        """What to tell a client whose request found the upload changed since `state` was read
        (`current` is the record now): never the offset it just sent to, to send to again."""
        if current is None:  # finished or cancelled
            return RegistryError(Oci.BLOB_UPLOAD_UNKNOWN, detail={"uuid": state.uuid})
        if current.offset != state.offset:
            return self._out_of_order(current)
        if current.finishing is not None:
            return RegistryError(Oci.BLOB_UPLOAD_INVALID, "another request is finishing this upload",
                                 detail={"uuid": state.uuid})
        # Same offset and no finish under way, yet what the record names is gone: it cannot go on.
        if self._meta.retire_upload(current):
            self.discard(current)
        return RegistryError(Oci.BLOB_UPLOAD_UNKNOWN, detail={"uuid": state.uuid})

    def _verify_from_state(self, state: UploadState, digest: Digest, data: bytes) -> bool | None:
        """True/False when the digest can be checked without reading S3; None otherwise."""
        if state.offset == 0:
            return digest.matches(data)
        if digest.algorithm != "sha256" or state.hash_state is None:
            return None
        running = resumable.ResumableSha256(state.hash_state)
        running.update(data)
        return running.hexdigest() == digest.hex

    def _verify_stored(self, key: str, digest: Digest) -> bool:
        hasher = hashlib.new(digest.algorithm)
        for chunk in self._blobs.stream(key):
            hasher.update(chunk)
        return hasher.hexdigest() == digest.hex

    def _reject(self, state: UploadState, upload: UploadState | None, digest: Digest,
                created: Sequence[str] = ()) -> NoReturn:
        """The bytes are not the digest: the upload ends with what it stored, unless a chunk
        moved it meanwhile (then this request worked from a stale state, and all stays but
        what it created itself)."""
        made = [key for key in created if key not in {p.key for p in state.pieces}]
        # A finish of other bytes holding the upload is not this request's to end.
        if upload is None or (state.finishing in (None, str(digest)) and self._meta.retire_upload(upload)):
            self.discard(state, also=made)
        else:
            self._blobs.delete(made)
        raise RegistryError(Oci.DIGEST_INVALID, detail={"digest": str(digest)})

    def _assemble(self, state: UploadState, data: bytes, digest: str, persisted: bool) -> tuple[str, list[str]]:
        """Put the upload's bytes into one S3 object. Returns its key and the piece objects
        that are no longer needed once the blob is promoted."""
        piece_keys = [p.key for p in state.pieces]
        if state.lone_piece_is_blob(len(data), digest):
            return state.pieces[0].key, []  # no copy
        if not persisted:
            # A monolithic push (verified already; no upload record): its one object is the
            # blob, named as a first piece is, so that the purge finds it should this request
            # die before promoting it.
            key = state.piece_key(0, digest)
            self._blobs.put(key, data)
            return key, []
        # Writing `object_key`, and completing the multipart upload above all, cannot be undone:
        # claim the upload first, so that no chunk commits meanwhile and no finish of other
        # bytes writes the same object.
        if state.finishing == digest and self._blobs.size(state.object_key) == state.offset + len(data):
            return state.object_key, piece_keys  # assembled by an earlier attempt that then died
        if not self._meta.claim_finish(state, digest):
            raise MissingObject(state.object_key)
        if state.multipart_id is None:
            self._blobs.put(state.object_key, self._tail_with(state, data))
            return state.object_key, piece_keys
        try:
            parts = list(state.parts)
            if state.pieces or data:
                number = self._part_number(state)
                if len(state.pieces) == 1 and not data:
                    # The usual end of a chunked push: S3 copies the last piece in as the last part.
                    self._blobs.copy_part(state.object_key, state.multipart_id, number, state.pieces[0].key)
                else:
                    body = self._tail_with(state, data)
                    self._blobs.upload_part(state.object_key, state.multipart_id, number, body)
                parts.append(number)
            self._blobs.complete_multipart(state.object_key, state.multipart_id, parts)
        except MissingObject:
            # A finish of these same bytes (an earlier attempt of this one, or a twin) completed it.
            if self._blobs.size(state.object_key) != state.offset + len(data):
                raise
        return state.object_key, piece_keys

    # ---- mounts --------------------------------------------------------------------------

    def mount(self, repo: str, digest: Digest, source: str | None) -> BlobRecord | None:
        """Link a blob from `source` (or, with no source, from anywhere) without copying."""
        blob = self._meta.get_link(source, str(digest)) if source else self._meta.get_blob(str(digest))
        if blob is None or self._meta.link_existing(repo, blob, None) != "linked":
            return None
        return blob
