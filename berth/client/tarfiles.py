"""Files inside an uncompressed tar archive, read in place: where each member's bytes lie in
the archive, following the links that image archives use for content two images share."""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Mapping
from pathlib import Path

from berth.client.content import FileRange
from berth.client.errors import ClientError

_MAX_LINKS = 16


def normal(name: str) -> str:
    """A member's name as archives refer to it, whatever `./` or `..` it was written with."""
    return posixpath.normpath(name.removeprefix("./"))


def follow_links(members: Mapping[str, tarfile.TarInfo], name: str, where: object) -> tarfile.TarInfo:
    """The regular file `name` is, following the links image archives use for content two
    images share (`members` by their normal name)."""
    wanted = normal(name)
    for _ in range(_MAX_LINKS):
        member = members.get(wanted)
        if member is None:
            raise ClientError(f"{where} lacks {name}")
        if member.issym():
            wanted = normal(posixpath.join(posixpath.dirname(member.name), member.linkname))
        elif member.islnk():
            wanted = normal(member.linkname)
        elif member.isreg() and not member.sparse:
            return member
        else:
            raise ClientError(f"{where}: {name} is not a regular file")
    raise ClientError(f"{where}: {name} is a loop of links")


class TarFiles:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with tarfile.open(path, "r:") as tar:
                self._members = {normal(m.name): m for m in tar.getmembers()}
        except FileNotFoundError:
            raise ClientError(f"no such archive: {path}") from None
        except tarfile.ReadError as error:
            raise ClientError(f"{path} is not an uncompressed tar archive (decompress it first): {error}") from None

    def has(self, name: str) -> bool:
        return normal(name) in self._members

    def range(self, name: str) -> FileRange:
        """Where a member's bytes are in the archive."""
        member = follow_links(self._members, name, self.path)
        return FileRange(self.path, member.offset_data, member.size)

    def read(self, name: str) -> bytes:
        return read_all(self.range(name))


def read_all(content: FileRange) -> bytes:
    with content.open(0, content.size) as stream:
        return stream.read(content.size)
