"""The state of one blob upload between requests, and how a chunk changes it. Pure logic.

Bytes spool into one S3 multipart upload. S3 wants every part but the last to be at least
5 MiB while one request carries at most ~4.25 MiB, so chunks smaller than a part wait as
"pieces" (small S3 objects) until, with the next chunk, they fill a part.
"""

from __future__ import annotations

import re
import time
import uuid as uuidlib
from dataclasses import dataclass, fields, replace

from chalicelib.numbers import whole_number
from chalicelib.storage.records import Direct as Direct  # part of an upload's state, as Piece is
from chalicelib.storage.records import Piece, UploadRecord

PART_MIN = 5 * 1024 * 1024
CHUNKED_PREFIX, DIRECT_PREFIX = "blobs/", "direct/"  # where an upload assembles its blob
UPLOAD_OBJECT_PREFIXES = (CHUNKED_PREFIX, DIRECT_PREFIX)
PIECES_PREFIX = "blobs/pieces/"  # then the hour, then the piece (UploadState.piece_key)
MAX_PARTS = 10_000
_UUID = re.compile(r"^[0-9a-f]{32}\Z")


@dataclass(frozen=True)
class UploadState(UploadRecord):
    """An upload's record, with what a chunk or a finish does to it."""

    @classmethod
    def of(cls, record: UploadRecord) -> UploadState:
        """The state of an upload as storage returned it."""
        return record if isinstance(record, UploadState) else cls(**{f.name: getattr(record, f.name)
                                                                     for f in fields(record)})

    @classmethod
    def new(cls, repo: str, hash_state: bytes | None) -> UploadState:
        return cls(uuid=uuidlib.uuid4().hex, repo=repo, hash_state=hash_state)

    @property
    def object_key(self) -> str:
        """Where the assembled blob lives; promotion keeps it there (no copy). Direct uploads
        have a prefix of their own, which S3 notifies the verifier about."""
        return f"{DIRECT_PREFIX if self.direct else CHUNKED_PREFIX}{self.uuid}"

    def piece_key(self, offset: int, digest: str | None = None) -> str:
        """Unique per attempt, so a retried or racing chunk never overwrites a committed piece.
        Under the hour it is written in, so that the purge lists each hour's pieces once and
        finds those no record names (a request that died before its commit). A piece at offset
        0 may become the blob as it is: it carries the `digest` its bytes have, for the purge
        to ask the blob record."""
        name = f"{self.uuid}.{offset}.{uuidlib.uuid4().hex[:12]}"
        if digest is not None:
            name += f".{digest.replace(':', '-')}"
        return f"{PIECES_PREFIX}{piece_hour(time.time())}/{name}"

    @property
    def tail_size(self) -> int:
        return sum(p.size for p in self.pieces)

    def lone_piece_is_blob(self, last_chunk_size: int, digest: str) -> bool:
        """No multipart upload, one piece, nothing more, named with `digest`: that piece is
        the blob as it is. (A piece names the SHA-256 of its bytes; a blob pushed as sha512
        gets an object of its own.)"""
        return (self.multipart_id is None and len(self.pieces) == 1 and not last_chunk_size
                and parse_piece_key(self.pieces[0].key) == PieceName(self.uuid, digest))

    def fills_part(self, chunk_size: int) -> bool:
        return self.tail_size + chunk_size >= PART_MIN

    def tail_to_hold(self, chunk_size: int) -> int:
        """Bytes at the end of a part-filling chunk to hold back as a piece.

        Every byte held as a piece is written twice (docs/performance.md). Taking the whole
        chunk into the part leaves nothing, but then the next chunk fills no part and waits
        whole. Holding back PART_MIN - chunk lets a next chunk of the same size fill a part at
        once: 4 MiB chunks then cost 5 MiB of pieces per 12 MiB rather than 4 per 8 (1.42x
        written instead of 1.5x). If the upload ends instead, the held bytes were the cost;
        the gain covers it from chunks of 0.8 x PART_MIN (4 MiB) up, so smaller ones hold
        nothing. The part must still reach PART_MIN without the held bytes."""
        hold = PART_MIN - chunk_size
        if hold <= 0 or 5 * chunk_size < 4 * PART_MIN or self.tail_size + chunk_size - hold < PART_MIN:
            return 0
        return hold

    def with_piece(self, piece: Piece, hash_state: bytes | None) -> UploadState:
        return replace(self, offset=self.offset + piece.size, pieces=self.pieces + (piece,), hash_state=hash_state)

    def with_part(self, multipart_id: str, number: int, chunk_size: int, hash_state: bytes | None) -> UploadState:
        return replace(
            self,
            offset=self.offset + chunk_size,
            multipart_id=multipart_id,
            parts=self.parts + (number,),
            pieces=(),
            hash_state=hash_state,
        )


def piece_hour(when: float) -> str:
    """The hour (UTC) a piece written at `when` is filed under: YYYYMMDDHH."""
    return time.strftime("%Y%m%d%H", time.gmtime(when))


@dataclass(frozen=True)
class PieceName:
    """What a piece's key says: its upload, and the digest of its bytes if it is a first piece."""

    uuid: str
    digest: str | None


def parse_piece_key(key: str) -> PieceName | None:
    """None for a key that is not a piece's."""
    if not key.startswith(PIECES_PREFIX):
        return None
    parts = key.rsplit("/", 1)[-1].split(".")
    if len(parts) not in (3, 4) or not valid_uuid(parts[0]):
        return None
    return PieceName(parts[0], parts[3].replace("-", ":", 1) if len(parts) == 4 else None)


def upload_of_object(key: str) -> str | None:
    """The uuid of the upload whose `object_key` this is; None for any other key."""
    for prefix in UPLOAD_OBJECT_PREFIXES:
        if key.startswith(prefix) and valid_uuid(key[len(prefix):]):
            return key[len(prefix):]
    return None


def valid_uuid(text: str) -> bool:
    return bool(_UUID.match(text))


def range_header(offset: int) -> str:
    """`Range: 0-<last byte>`; the reference registry says 0-0 for an empty upload."""
    return f"0-{max(offset - 1, 0)}"


_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?\Z")
_OFFSET_CAP = 1 << 63  # past every upload's end (S3 objects stop at 5 TiB)


def parse_content_range(header: str) -> tuple[int, int] | None:
    """`start-end` (inclusive, as clients send it; `bytes=` tolerated) or None if malformed
    or past any upload's end."""
    match = _CONTENT_RANGE.match(header.strip())
    if not match:
        return None
    start, end = whole_number(match.group(1), _OFFSET_CAP), whole_number(match.group(2), _OFFSET_CAP)
    if start is None or end is None or end >= _OFFSET_CAP or end < start:
        return None
    return start, end
