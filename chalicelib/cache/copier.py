"""The copier: brings a blob a client pulled through the cache into S3, checks its digest, and
only then makes it the cached copy later pulls are redirected to (SQS → Lambda `copy_blob`).

One invocation at a time per blob (a lease in its record: SQS may deliver twice). A blob too
big for one invocation is copied across several, like the verifier (chalicelib/uploads/
verify.py): S3 multipart parts, the running SHA-256 state and the offset are checkpointed in
the record after each part, a continuation message wakes the next invocation, and that one
asks the upstream for the rest with a Range request. Bytes that do not match the digest are
deleted and nothing is cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from chalicelib.cache.counters import CacheCounters
from chalicelib.cache.http import HttpResponse, Unreachable
from chalicelib.cache.rules import CacheConfig, Rule
from chalicelib.cache.upstream import NotFound, Unavailable, UpstreamRegistry
from chalicelib.digest import resumable
from chalicelib.digest.digests import Digest
from chalicelib.storage.cache import DONE, FAILED, CachedBlob, CacheStore
from chalicelib.storage.s3 import BlobStore

log = logging.getLogger("berth.cache")
CONTINUE = "berth-cache"  # the message: {"berth-cache": "<digest>"}
PART_SIZE = 16 * 1024 * 1024  # S3 parts of the copy (≥ 5 MiB); 10,000 of them is 160 GiB
MAX_PARTS = 10_000
LEASE_SECONDS = 16 * 60  # longer than a Lambda runs; renewed at each part
MAX_ATTEMPTS = 5  # invocations that found the upstream unavailable before the copy is given up
RETRY_DELAY_SECONDS = 60


class LeaseLost(Exception):
    """Another invocation took the copy over (this one outlived its lease)."""


def copies_in(message: str) -> list[str]:
    """The digests an SQS message asks to copy."""
    try:
        body = json.loads(message)
    except ValueError:
        return []
    value = body.get(CONTINUE) if isinstance(body, dict) else None
    return [value] if isinstance(value, str) else []


def message(digest: str) -> str:
    return json.dumps({CONTINUE: digest})


class Copier:
    def __init__(self, config: CacheConfig, store: CacheStore, blobs: BlobStore,
                 upstream: Callable[[Rule], UpstreamRegistry], continue_later: Callable[[str, int], None],
                 counters: CacheCounters, clock: Callable[[], float] = time.time, part_size: int = PART_SIZE) -> None:
        self._config = config
        self._store = store
        self._blobs = blobs
        self._upstream = upstream
        self._continue_later = continue_later  # (digest, delay in seconds)
        self._counters = counters
        self._clock = clock
        self.part_size = part_size

    def _now(self) -> int:
        return int(self._clock())

    def run(self, digest: str, should_stop: Callable[[], bool]) -> str:
        """Copy one blob as far as time allows; says what became of it."""
        owner = uuid.uuid4().hex
        blob = self._store.claim_copy(digest, owner, self._now(), self._now() + LEASE_SECONDS)
        if blob is None:
            return "nothing to copy"  # cached, failed, gone, or another invocation holds it
        try:
            return self._copy(blob, owner, should_stop)
        finally:
            self._counters.flush(force=True)

    def _copy(self, blob: CachedBlob, owner: str, should_stop: Callable[[], bool]) -> str:
        rule = self._config.rule_by_prefix(blob.source_prefix)
        if rule is None:
            return self._fail(blob, owner, "unavailable", "its rule is no longer configured")
        expected = Digest.parse(blob.digest)
        resuming = expected.algorithm == "sha256" and resumable.available()
        if blob.offset and (not resuming or blob.hash_state is None):
            blob = self._restart(blob)  # a checkpoint this invocation cannot carry on from
        try:
            response = self._upstream(rule).open_blob(blob.source_repo, blob.digest, blob.offset)
        except NotFound:
            return self._fail(blob, owner, "missing", "the upstream no longer has it")
        except Unavailable as err:
            return self._later(blob, owner, err.reason)
        try:
            return self._stream(blob, owner, expected, resuming, self._from(response, blob.offset), should_stop)
        except LeaseLost:
            return "taken over"
        finally:
            response.close()

    def _from(self, response: HttpResponse, offset: int) -> Iterator[bytes]:
        """The body from `offset`: a 206 starts there; a 200 (the Range was ignored) is skipped
        forward to it."""
        if offset and response.status == 206:
            first = (response.header("content-range") or "").removeprefix("bytes ").split("-", 1)[0]
            if first.strip() != str(offset):
                raise Unreachable("the upstream answered a Range request with another range")
            yield from response.chunks(1024 * 1024)
            return
        skip = offset
        for chunk in response.chunks(1024 * 1024):
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            yield chunk[skip:]
            skip = 0

    def _stream(self, blob: CachedBlob, owner: str, expected: Digest, resuming: bool, stream: Iterator[bytes],
                should_stop: Callable[[], bool]) -> str:
        hasher: Any = resumable.ResumableSha256(blob.hash_state) if resuming else hashlib.new(expected.algorithm)
        buffer = bytearray()
        try:
            for chunk in stream:
                buffer += chunk
                while len(buffer) >= self.part_size:
                    # A part only once more bytes exist: the last part may be short, others not.
                    part, buffer = bytes(buffer[:self.part_size]), buffer[self.part_size:]
                    blob = self._part(blob, owner, part, hasher)
                    if len(blob.parts) >= MAX_PARTS:
                        return self._fail(blob, owner, "unavailable", "larger than the cache copies")
                    if resuming and should_stop():
                        # What is buffered beyond the part is read again by the next invocation.
                        self._store.save_copy(blob, owner, until=None)
                        self._continue_later(blob.digest, 0)
                        return f"continued at {blob.offset}"
        except Unreachable as err:
            return self._later(blob, owner, str(err))  # from the last checkpoint, which `blob` is
        hasher.update(bytes(buffer))
        actual = hasher.hexdigest()
        size = blob.offset + len(buffer)
        if actual != expected.hex:
            log.warning("the upstream's bytes for %s hash to %s:%s; not cached", blob.digest, expected.algorithm,
                        actual)
            self._counters.add(copies_rejected=1)
            return self._fail(blob, owner, "digest", "its bytes do not match its digest")
        self._finish_object(blob, bytes(buffer))
        done = replace(blob, state=DONE, size=size, offset=size, hash_state=None, multipart_id=None, parts=(),
                       updated=self._now())
        if not self._store.save_copy(done, owner, until=None):
            return "taken over"
        self._counters.add(copies=1, bytes_copied=size)
        return "copied"

    def _part(self, blob: CachedBlob, owner: str, data: bytes, hasher: Any) -> CachedBlob:
        """Upload one part and checkpoint after it (renewing the lease)."""
        if blob.multipart_id is None:
            blob = replace(blob, multipart_id=self._blobs.start_multipart(blob.key))
        number = len(blob.parts) + 1
        self._blobs.upload_part(blob.key, blob.multipart_id or "", number, data)
        hasher.update(data)
        state = hasher.state() if isinstance(hasher, resumable.ResumableSha256) else None
        advanced = replace(blob, parts=(*blob.parts, number), offset=blob.offset + len(data), hash_state=state,
                           updated=self._now())
        if not self._store.save_copy(advanced, owner, until=self._now() + LEASE_SECONDS):
            raise LeaseLost()
        return advanced

    def _finish_object(self, blob: CachedBlob, tail: bytes) -> None:
        if blob.multipart_id is None:
            self._blobs.put(blob.key, tail)
            return
        numbers = list(blob.parts)
        if tail:
            numbers.append(len(blob.parts) + 1)
            self._blobs.upload_part(blob.key, blob.multipart_id, numbers[-1], tail)
        self._blobs.complete_multipart(blob.key, blob.multipart_id, numbers)

    def _discard(self, blob: CachedBlob) -> None:
        if blob.multipart_id:
            self._blobs.abort_multipart(blob.key, blob.multipart_id)
        self._blobs.delete([blob.key])

    def _restart(self, blob: CachedBlob) -> CachedBlob:
        self._discard(blob)
        return replace(blob, key=f"{blob.key.rsplit('/', 1)[0]}/{uuid.uuid4().hex}", offset=0, hash_state=None,
                       multipart_id=None, parts=())

    def _fail(self, blob: CachedBlob, owner: str, failure: str, why: str) -> str:
        """Give the copy up, deleting what it wrote: the record says why (a waiting pull reports
        it), and a later pull may try again after a while (service.RETRY_FAILED_SECONDS)."""
        log.warning("not caching %s: %s", blob.digest, why)
        self._discard(blob)
        failed = replace(blob, state=FAILED, failure=failure, offset=0, hash_state=None, multipart_id=None, parts=(),
                         updated=self._now())
        self._store.save_copy(failed, owner, until=None)
        return f"failed: {why}"

    def _later(self, blob: CachedBlob, owner: str, why: str) -> str:
        """The upstream cannot serve the bytes now: try again in a minute, a few times."""
        if blob.attempts + 1 >= MAX_ATTEMPTS:
            return self._fail(blob, owner, "unavailable", f"the upstream failed {MAX_ATTEMPTS} times: {why}")
        self._store.save_copy(replace(blob, attempts=blob.attempts + 1, updated=self._now()), owner, until=None)
        self._continue_later(blob.digest, RETRY_DELAY_SECONDS)
        return f"retrying later: {why}"
