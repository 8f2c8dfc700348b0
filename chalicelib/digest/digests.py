"""Content digests (`algorithm:hex`): parsing, validation and computation. Pure logic."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from chalicelib.errors import Oci, RegistryError

# Hex length of each algorithm the registry accepts; others are refused by name.
HEX_LENGTHS = {"sha256": 64, "sha512": 128}

# The spec's grammar for a digest of any algorithm, so a well-formed but unsupported one gets
# a message that says so rather than "malformed".
_GRAMMAR = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z")


@dataclass(frozen=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str | None) -> Digest:
        if not text or not _GRAMMAR.match(text):
            raise RegistryError(Oci.DIGEST_INVALID, "invalid digest", detail={"digest": text})
        algorithm, hex_part = text.split(":", 1)
        length = HEX_LENGTHS.get(algorithm)
        if length is None:
            raise RegistryError(
                Oci.DIGEST_INVALID,
                f"unsupported digest algorithm {algorithm!r}; use one of {', '.join(sorted(HEX_LENGTHS))}",
                detail={"digest": text},
            )
        if len(hex_part) != length or not re.fullmatch(r"[0-9a-f]+", hex_part):
            raise RegistryError(
                Oci.DIGEST_INVALID,
                f"{algorithm} digest must be {length} lowercase hex characters",
                detail={"digest": text},
            )
        return cls(algorithm, hex_part)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def matches(self, data: bytes) -> bool:
        return Digest.of(data, self.algorithm) == self


def looks_like_digest(reference: str) -> bool:
    """A manifest reference is a digest when it has a colon (tags cannot)."""
    return ":" in reference
