"""Puts one blob into a repository the cheapest way the registry allows: not at all when it is
there, a mount when another repository is known to hold it, one request when it fits in one,
Berth's direct upload when it does not, chunked PATCHes on registries without direct uploads;
and continues an interrupted upload where it stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor

from berth.client.content import Body, Content
from berth.client.direct import DirectUpload, VerificationFailed, await_verification
from berth.client.errors import AuthError, ClientError, RegistryError
from berth.client.manifests import Descriptor
from berth.client.progress import Meter, Progress
from berth.client.registry import PartListing, Repository
from berth.client.resume import Resumable, ResumeStore

# The largest body Berth takes (OCI-Chunk-Max-Length), assumed until a registry says otherwise.
DEFAULT_CHUNK_MAX = 4_456_448


def _bodies(content: Content, offset: int, length: int, meter: Meter) -> Callable[[], Body]:
    """A fresh body per attempt; a retry takes back what the failed attempt counted."""
    previous: list[Body] = []

    def make() -> Body:
        for body in previous:
            meter.advance(-body.sent)
        previous[:] = [Body(content, offset, length, meter.advance)]
        return previous[0]

    return make


class BlobPusher:
    """Pushes blobs into `repo`. Direct-upload parts go through `pool` (its size bounds the
    parts in flight, hence memory); `resume` (None: never) keeps unfinished uploads; setting
    `stop` makes uploads in progress give up at the next part or chunk."""

    def __init__(self, repo: Repository, pool: Executor, *, progress: Progress | None = None,
                 resume: ResumeStore | None = None, stop: threading.Event | None = None) -> None:
        self.repo, self.pool = repo, pool
        self.progress = progress or Progress()
        self.resume = resume
        self.stop = stop or threading.Event()

    def push(self, descriptor: Descriptor, content: Content) -> str:
        """Make the repository hold the blob; returns "exists", "mounted" or "pushed"."""
        meter = self.progress.meter(descriptor.digest, descriptor.size)
        try:
            outcome = self._push(descriptor, content, meter)
        except VerificationFailed:
            self._forget(descriptor)  # that upload is over: a new push starts afresh
            raise
        meter.close(outcome)
        self.repo.client.remember(descriptor.digest, self.repo.name)
        return outcome

    def _push(self, blob: Descriptor, content: Content, meter: Meter) -> str:
        if self.repo.blob_size(blob.digest) is not None:
            return "exists"
        if self._mount(blob):
            return "mounted"
        if self._resumed(blob, content, meter):
            return "pushed"
        large = blob.size > (self.repo.client.chunk_max or DEFAULT_CHUNK_MAX)
        start = self.repo.start_upload(direct_size=blob.size if large else None)
        if start.created:
            return "exists"
        if start.direct:
            self._save(blob, start.location, "direct")
            self._direct(start.location, self.repo.upload_parts(start.location), blob, content, meter)
        elif start.chunk_max is None or blob.size <= start.chunk_max:
            self.repo.finish_upload(start.location, blob.digest, _bodies(content, 0, blob.size, meter), blob.size)
        else:
            self._save(blob, start.location, "chunked")
            self._chunked(start.location, 0, blob, content, meter)
        self._forget(blob)
        return "pushed"

    def _mount(self, blob: Descriptor) -> bool:
        for source in self.repo.client.holders(blob.digest):
            if source == self.repo.name:
                continue
            try:
                start = self.repo.start_upload(digest=blob.digest, mount_from=source)
            except AuthError:
                continue  # no access to the source: not worth failing for
            if start.created:
                return True
            self.repo.cancel_upload(start.location)  # the registry opened a plain upload instead
        return False

    def _resumed(self, blob: Descriptor, content: Content, meter: Meter) -> bool:
        """Finish an upload an earlier run left, if the registry still has it."""
        state = self.resume.get(self.repo.client.host, self.repo.name, blob.digest) if self.resume else None
        if state is None:
            return False
        try:
            if state.mode == "direct":
                listing = self.repo.upload_parts(state.location)
            else:
                offset = self.repo.upload_offset(state.location)
        except RegistryError as error:
            if state.mode == "direct" and error.code == "BLOB_UPLOAD_INVALID":
                # Finished before the interruption (it has no parts to list): only the check is left.
                meter.advance(blob.size)
                await_verification(self.repo, state.location, blob.digest, blob.size, self.stop)
                self._forget(blob)
                return True
            if error.status != 404:
                raise
            self._forget(blob)  # finished, cancelled or purged meanwhile: start over
            return False
        if state.mode == "direct":
            self._direct(state.location, listing, blob, content, meter)
        else:
            self._chunked(state.location, offset, blob, content, meter)
        self._forget(blob)
        return True

    def _direct(self, location: str, listing: PartListing, blob: Descriptor, content: Content, meter: Meter) -> None:
        DirectUpload(self.repo, location, listing, content, blob.digest, blob.size, self.pool, meter, self.stop).run()

    def _chunked(self, location: str, offset: int, blob: Descriptor, content: Content, meter: Meter) -> None:
        chunk = self.repo.client.chunk_max or DEFAULT_CHUNK_MAX
        meter.advance(offset)
        while offset < blob.size:
            if self.stop.is_set():
                raise ClientError("stopped")
            length = min(chunk, blob.size - offset)
            location = self.repo.send_chunk(location, _bodies(content, offset, length, meter), offset, length)
            offset += length
            self._save(blob, location, "chunked")  # the location may change with every chunk
        self.repo.finish_upload(location, blob.digest)

    def _save(self, blob: Descriptor, location: str, mode: str) -> None:
        if self.resume:
            self.resume.put(self.repo.client.host, self.repo.name, blob.digest, Resumable(location, mode))

    def _forget(self, blob: Descriptor) -> None:
        if self.resume:
            self.resume.forget(self.repo.client.host, self.repo.name, blob.digest)
