"""The relay's own blob uploads: each a file in the spool directory that grows chunk by chunk
and is hashed as it grows, so the digest is known the moment the client finishes. A file
lives as long as its upload: it goes when the blob is delivered, when the client cancels,
when the upload sits idle too long, and with the whole spool directory when the relay stops."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.serving import BLOCK

log = logging.getLogger("berth.relay")


@dataclass
class Upload:
    id: str
    repository: str
    path: Path
    # The upstream upload opened when the client started (it proved the client may push): a
    # blob small enough for one request goes into it. None: the relay opens its own later.
    upstream_upload: str | None
    chunk_max: int  # the largest body the upstream takes in one request
    size: int = 0
    touched: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _sha256: Any = field(default_factory=hashlib.sha256)

    def append(self, blocks: Iterable[bytes]) -> None:
        """Add the bytes to the file. All or nothing: when reading them fails (the client went
        away, or sent more or less than it said), the file and hash are as before and the error
        goes on."""
        size, hashed = self.size, self._sha256.copy()
        try:
            with self.path.open("ab") as file:
                for block in blocks:
                    file.write(block)
                    self._sha256.update(block)
                    self.size += len(block)
        except BaseException:
            self.size, self._sha256 = size, hashed
            with suppress(OSError), self.path.open("r+b") as file:
                file.truncate(size)
            raise

    def digest(self, algorithm: str) -> str:
        """The digest of the bytes so far: kept up for sha256, computed from the file otherwise."""
        if algorithm == "sha256":
            return "sha256:" + self._sha256.hexdigest()
        hasher = hashlib.new(algorithm)
        with self.path.open("rb") as file:
            while block := file.read(BLOCK):
                hasher.update(block)
        return f"{algorithm}:{hasher.hexdigest()}"


class Uploads:
    """The uploads in progress, their files under a private directory made in `parent` (the
    system's temporary directory by default). Uploads idle for `idle_seconds` are removed (their
    upstream uploads, if any, the upstream purges as abandoned: the relay keeps no credentials
    to cancel them with)."""

    def __init__(self, parent: Path | None = None, idle_seconds: float = 3600.0) -> None:
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        self.directory = Path(tempfile.mkdtemp(prefix="berth-relay-", dir=parent))
        self.idle_seconds = idle_seconds
        self._uploads: dict[str, Upload] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="berth-relay-reaper", daemon=True)
        self._reaper.start()

    def open(self, repository: str, upstream_upload: str | None, chunk_max: int) -> Upload:
        upload_id = str(uuid.uuid4())
        path = self.directory / upload_id
        path.touch(mode=0o600, exist_ok=False)
        upload = Upload(upload_id, repository, path, upstream_upload, chunk_max)
        with self._lock:
            self._uploads[upload_id] = upload
        return upload

    def __contains__(self, upload_id: str) -> bool:
        with self._lock:
            return upload_id in self._uploads

    @contextmanager
    def use(self, repository: str, upload_id: str) -> Iterator[Upload | None]:
        """The upload, held for one request (None: no such upload in this repository)."""
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None or upload.repository != repository:
            yield None
            return
        with upload.lock:
            if upload_id not in self:  # removed while this request waited for it
                yield None
                return
            try:
                yield upload
            finally:
                upload.touched = time.monotonic()

    def remove(self, upload: Upload) -> None:
        with self._lock:
            self._uploads.pop(upload.id, None)
        upload.path.unlink(missing_ok=True)

    def expire(self, now: float | None = None) -> list[Upload]:
        """Remove the uploads idle for too long (not those a request is using)."""
        cutoff = (time.monotonic() if now is None else now) - self.idle_seconds
        with self._lock:
            candidates = [u for u in self._uploads.values() if u.touched < cutoff]
        expired = []
        for upload in candidates:
            if not upload.lock.acquire(blocking=False):
                continue
            try:
                if upload.touched < cutoff:
                    self.remove(upload)
                    expired.append(upload)
            finally:
                upload.lock.release()
        for upload in expired:
            log.info("upload %s to %s was idle too long: removed", upload.id, upload.repository)
        return expired

    def _reap(self) -> None:
        while not self._stop.wait(min(60.0, self.idle_seconds / 4)):
            try:
                self.expire()
            except Exception:
                log.exception("removing idle uploads failed")

    def close(self) -> None:
        """Stop, and remove every file with the spool directory."""
        self._stop.set()
        with self._lock:
            self._uploads.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
