"""Blob bytes to send, read a range at a time so that no layer is ever held in memory: a
range of a file (a layout blob, a member of a `docker save` archive) or of a remote blob."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

BLOCK = 1024 * 1024


class Content(Protocol):
    """A blob's bytes, readable from any offset (so parts go in parallel and resume)."""

    def open(self, offset: int, length: int) -> BinaryIO:
        """A stream of the `length` bytes from `offset` on; the caller closes it."""
        ...


class FileRange:
    """`size` bytes of a file starting at `start`."""

    def __init__(self, path: Path, start: int = 0, size: int | None = None) -> None:
        self.path, self.start = path, start
        self.size = os.path.getsize(path) - start if size is None else size

    def open(self, offset: int, length: int) -> BinaryIO:
        if offset < 0 or offset + length > self.size:
            raise ValueError(f"bytes {offset}+{length} are outside {self.path} ({self.size} bytes)")
        stream = self.path.open("rb")
        stream.seek(self.start + offset)
        return stream

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self.open(0, self.size) as stream:
            left = self.size
            while left:
                block = stream.read(min(BLOCK, left))
                if not block:
                    raise OSError(f"{self.path} ended early")
                digest.update(block)
                left -= len(block)
        return "sha256:" + digest.hexdigest()


class Body:
    """A request body: `length` bytes of `content` from `offset`, read as the HTTP library sends
    them (`__len__` makes requests send Content-Length rather than chunked encoding), with
    `on_read` told of every block (what progress bars count). Opens its stream on the first
    read; `close()` releases it."""

    def __init__(self, content: Content, offset: int, length: int,
                 on_read: Callable[[int], None] = lambda n: None) -> None:
        self._content, self._offset, self._on_read = content, offset, on_read
        self._stream: BinaryIO | None = None
        self.length, self.sent = length, 0

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        left = self.length - self.sent
        want = left if size is None or size < 0 else min(size, left)
        if not want:
            return b""
        if self._stream is None:
            self._stream = self._content.open(self._offset, self.length)
        block = self._stream.read(want)
        if not block:
            raise OSError(f"the source ended {left} bytes early")
        self.sent += len(block)
        self._on_read(len(block))
        return block

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
