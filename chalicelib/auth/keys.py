"""The token signing keys: a ring whose first key signs, and whose older keys still verify
until their overlap ends. Pure logic; the ring is stored as JSON text in the table or in a
Secrets Manager secret (chalicelib/storage/accounts.py, chalicelib/registry.py).

A key stored before rings existed (raw bytes, or a plain secret string) is the ring's one key,
with the id `legacy`; tokens signed before `kid` existed carry no id and mean that key."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

LEGACY_KID = "legacy"
DEFAULT_OVERLAP_SECONDS = 3600


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key: bytes
    created: int
    retire_at: int | None = None  # None: signing, or still verifying with no end set

    def verifies_at(self, now: float) -> bool:
        return self.retire_at is None or now < self.retire_at


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[SigningKey, ...]

    @property
    def current(self) -> SigningKey:
        return self.keys[0]

    def find(self, kid: str | None) -> SigningKey | None:
        wanted = kid or LEGACY_KID
        return next((k for k in self.keys if k.kid == wanted), None)

    def rotated(self, now: int, overlap_seconds: int = DEFAULT_OVERLAP_SECONDS) -> KeyRing:
        """A new signing key first; the old ones verify for `overlap_seconds` more (or less, if
        they were to stop sooner), and keys already past their end are dropped."""
        end = now + overlap_seconds
        kept = tuple(replace(k, retire_at=end if k.retire_at is None else min(k.retire_at, end))
                     for k in self.keys if k.verifies_at(now))
        return KeyRing((new_key(now), *kept))

    def to_json(self) -> str:
        return json.dumps({"keys": [{"kid": k.kid, "key": base64.b64encode(k.key).decode("ascii"),
                                     "created": k.created, "retire_at": k.retire_at} for k in self.keys]})

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        data = json.loads(text)
        return cls(tuple(SigningKey(str(k["kid"]), base64.b64decode(k["key"]), int(k["created"]),
                                    None if k.get("retire_at") is None else int(k["retire_at"]))
                         for k in data["keys"]))

    @classmethod
    def from_secret_string(cls, text: str) -> KeyRing:
        """A secret holds a ring as JSON, or (as created by the stack) one plain key."""
        if text.lstrip().startswith("{"):
            return cls.from_json(text)
        return cls((SigningKey(LEGACY_KID, text.encode("utf-8"), 0),))


def new_key(now: int) -> SigningKey:
    return SigningKey(secrets.token_hex(8), secrets.token_bytes(32), now)


class CachedRing:
    """A container's copy of the ring: read again every `ttl` seconds, so a rotation's end
    holds everywhere within that time, and early when a token names a key the copy lacks
    (at most every `min_interval` seconds, so tokens with made-up key ids cannot make every
    request a read)."""

    def __init__(self, load: Callable[[], KeyRing], ttl: float = 60.0, min_interval: float = 5.0) -> None:
        self._load = load
        self._ttl = ttl
        self._min_interval = min_interval
        self._lock = threading.Lock()
        self._ring: KeyRing | None = None
        self._read_at = 0.0

    def __call__(self, again: bool = False) -> KeyRing:
        now = time.monotonic()
        with self._lock:
            age = now - self._read_at
            if self._ring is None or age >= self._ttl or (again and age >= self._min_interval):
                self._ring, self._read_at = self._load(), now
            return self._ring

    def forget(self) -> None:
        with self._lock:
            self._ring = None
