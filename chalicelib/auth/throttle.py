"""Throttling of failed logins, per user name and per source address. Pure logic; the
counters live in the table (chalicelib/storage/throttle.py), so every Lambda container sees
the same ones.

A counter counts attempts in a fixed window: each check reserves one before it runs, and a
check that succeeds gives it back, so what stays counted is failures (and checks under way).
Once a name or an address has `limit` of them in the current window, checks for it stop
until the window ends: the caller gets 429 TOOMANYREQUESTS with `Retry-After`. Names and
addresses are stored as hashes: they come from the caller and may be anything."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from chalicelib.errors import Oci, RegistryError


@dataclass(frozen=True)
class Limit:
    kind: str  # "user" or "source"
    failures: int
    window_seconds: int

    def window(self, now: float) -> tuple[int, int]:
        """The current window's number and the whole seconds until it ends (at least 1)."""
        number = int(now // self.window_seconds)
        return number, max(1, int((number + 1) * self.window_seconds - now + 0.999))


# Ten wrong passwords for one name, or thirty from one address, in five minutes.
USER_LIMIT = Limit("user", 10, 300)
SOURCE_LIMIT = Limit("source", 30, 300)


@dataclass(frozen=True)
class Counter:
    limit: Limit
    subject: str  # a hash of the name or address

    def key(self, now: float) -> tuple[str, str]:
        return f"throttle#{self.limit.kind}#{self.subject}", f"window#{self.limit.window(now)[0]}"


def expiry(now: float) -> int:
    """When counters written now may go: well after their windows end."""
    return int(now) + 2 * max(USER_LIMIT.window_seconds, SOURCE_LIMIT.window_seconds)


def counters(user: str, source: str) -> list[Counter]:
    found = [Counter(USER_LIMIT, _digest(user))]
    if source:
        found.append(Counter(SOURCE_LIMIT, _digest(source)))
    return found


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", errors="surrogatepass")).hexdigest()[:32]


def too_many(retry_after: int) -> RegistryError:
    return RegistryError(Oci.TOOMANYREQUESTS, "too many failed logins; try again later",
                         detail={"retry_after": retry_after}, headers={"Retry-After": str(retry_after)})
