"""The verifier: S3 tells it (through SQS) that a direct upload's object is complete; it
streams the object, checks its digest and promotes it, or deletes it on a mismatch.

A blob too big for one invocation is verified across several: the running SHA-256 state
and the offset are checkpointed in the upload record (conditionally, so duplicate
deliveries cannot interleave) and a continuation message wakes the next invocation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import unquote_plus

from chalicelib.digest import resumable
from chalicelib.digest.digests import Digest
from chalicelib.errors import RegistryError
from chalicelib.storage.dynamo import MetadataStore
from chalicelib.storage.records import BlobRecord
from chalicelib.storage.s3 import BlobStore, MissingObject
from chalicelib.uploads.direct import fail
from chalicelib.uploads.service import Uploads
from chalicelib.uploads.state import DIRECT_PREFIX, UploadState

CONTINUE = "berth-verify"  # the continuation message: {"berth-verify": "<upload uuid>"}
CHECKPOINT_BYTES = 1024 * 1024 * 1024  # also saved every GiB, so a crash loses little


def uploads_in(message: str) -> list[str]:
    """Upload ids named by an SQS message body: an S3 event notification for objects under
    `direct/`, or our own continuation. Anything else (S3's test event) names none."""
    try:
        body = json.loads(message)
    except ValueError:
        return []
    if isinstance(body, dict) and isinstance(body.get(CONTINUE), str):
        return [body[CONTINUE]]
    found = []
    for record in body.get("Records", []) if isinstance(body, dict) else []:
        key = unquote_plus(record.get("s3", {}).get("object", {}).get("key", ""))
        if record.get("eventName", "").startswith("ObjectCreated") and key.startswith(DIRECT_PREFIX):
            found.append(key[len(DIRECT_PREFIX):])
    return found


class Verifier:
    def __init__(self, blobs: BlobStore, meta: MetadataStore, uploads: Uploads,
                 continue_later: Callable[[str], None]) -> None:
        self._blobs = blobs
        self._meta = meta
        self._uploads = uploads
        self._continue_later = continue_later

    def run(self, uuid: str, should_stop: Callable[[], bool]) -> str:
        """Verify one upload as far as time allows; says what became of it."""
        state = self._uploads.current(uuid)
        if state is None or state.direct is None or state.direct.phase != "verifying" or not state.direct.digest:
            return "nothing to verify"
        digest = Digest.parse(state.direct.digest)
        # Only an object of the declared size, and across invocations the same one (by ETag):
        # the size promoted with the digest is then that of the bytes hashed.
        found = self._blobs.head(state.object_key, state.direct.etag)
        if found is None or found[1] != state.direct.size:
            fail(self._blobs, self._meta, state)
            return "rejected"
        state = replace(state, direct=replace(state.direct, etag=found[0]))
        try:
            if digest.algorithm == "sha256" and state.hash_state is not None:
                return self._resumable(state, digest, should_stop)
            # No resumable state (sha512, or libcrypto without SHA256_*): one pass in one invocation.
            hasher = hashlib.new(digest.algorithm)
            for chunk in self._blobs.stream(state.object_key, etag=found[0]):
                hasher.update(chunk)
            return self._conclude(state, digest, hasher.hexdigest())
        except MissingObject:  # deleted or replaced mid-way: not the object checked
            fail(self._blobs, self._meta, state)
            return "rejected"

    def _resumable(self, state: UploadState, digest: Digest, should_stop: Callable[[], bool]) -> str:
        assert state.direct is not None
        running = resumable.ResumableSha256(state.hash_state)
        offset = saved = state.offset
        remaining = (self._blobs.stream(state.object_key, start=offset, etag=state.direct.etag)
                     if offset < state.direct.size else iter(()))
        for chunk in remaining:
            running.update(chunk)
            offset += len(chunk)
            if offset < state.direct.size and (offset - saved >= CHECKPOINT_BYTES or should_stop()):
                advanced = replace(state, offset=offset, hash_state=running.state())
                if not self._meta.commit_upload(advanced, expected_offset=state.offset):
                    return "taken over"  # a duplicate delivery is ahead of us
                state, saved = advanced, offset
                if should_stop():
                    self._continue_later(state.uuid)
                    return f"continued at {offset}"
        return self._conclude(state, digest, running.hexdigest())

    def _conclude(self, state: UploadState, digest: Digest, actual: str) -> str:
        """`state` is the record as last committed: the conditions below name its offset."""
        assert state.direct is not None
        if actual != digest.hex:
            fail(self._blobs, self._meta, state)
            return "rejected"
        try:
            self._uploads.promote(state, BlobRecord(str(digest), state.object_key, state.direct.size), state, [])
        except RegistryError:
            return "taken over"  # a duplicate delivery moved or finished the upload first
        return "promoted"
