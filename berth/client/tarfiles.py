"""Files inside an uncompressed tar archive, read in place: where each member's bytes lie in
the archive, following the links that image archives use for content two images share."""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path

from berth.client.content import FileRange
from berth.client.errors import ClientError

_MAX_LINKS = 16


def _normal(name: str) -> str:
    return posixpath.normpath(name.removeprefix("./"))


class TarFiles:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with tarfile.open(path, "r:") as tar:
                self._members = {_normal(m.name): m for m in tar.getmembers()}
        except FileNotFoundError:
            raise ClientError(f"no such archive: {path}") from None
        except tarfile.ReadError as error:
            raise ClientError(f"{path} is not an uncompressed tar archive (decompress it first): {error}") from None

    def has(self, name: str) -> bool:
        return _normal(name) in self._members

    def range(self, name: str) -> FileRange:
        """Where a member's bytes are in the archive."""
        wanted = _normal(name)
        for _ in range(_MAX_LINKS):
            member = self._members.get(wanted)
            if member is None:
                raise ClientError(f"{self.path} lacks {name}")
            if member.issym():
                wanted = _normal(posixpath.join(posixpath.dirname(member.name), member.linkname))
            elif member.islnk():
                wanted = _normal(member.linkname)
            elif member.isreg() and not member.sparse:
                return FileRange(self.path, member.offset_data, member.size)
            else:
                raise ClientError(f"{self.path}: {name} is not a regular file")
        raise ClientError(f"{self.path}: {name} is a loop of links")

    def read(self, name: str) -> bytes:
        return read_all(self.range(name))


def read_all(content: FileRange) -> bytes:
    with content.open(0, content.size) as stream:
        return stream.read(content.size)
