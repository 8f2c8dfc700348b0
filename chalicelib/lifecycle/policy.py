"""What the owner configured about storage: retention rules and immutable tags per repository
pattern, upload and garbage-collection ages, delete switches. Pure logic (docs/lifecycle.md).

Scalars come from environment variables; the per-repository rules are one JSON document,
in `BERTH_LIFECYCLE` or in the file `BERTH_LIFECYCLE_FILE` names. A typo in a document that
decides what gets deleted must not pass silently, so unknown keys are errors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from chalicelib.storage.records import UPLOAD_TTL_HOURS

DAY = 86_400
HOUR = 3_600

_POLICY_KEYS = {"match", "immutable_tags", "keep_newest_tags", "expire_untagged_after_days", "expire_tags"}


class PolicyError(ValueError):
    """The lifecycle configuration is malformed; the message says where."""


@dataclass(frozen=True)
class TagExpiry:
    """Tags matching `match` are removed once their last push is older than `after_days`."""

    match: str
    after_days: float


@dataclass(frozen=True)
class RepositoryPolicy:
    match: str  # glob on repository names; `*` also matches `/`
    immutable_tags: tuple[str, ...] = ()  # globs of tags that, once pushed, keep their digest
    keep_newest_tags: int | None = None
    expire_untagged_after_days: float | None = None
    expire_tags: tuple[TagExpiry, ...] = ()

    def tag_is_immutable(self, tag: str) -> bool:
        return any(fnmatchcase(tag, pattern) for pattern in self.immutable_tags)

    @property
    def has_retention(self) -> bool:
        return bool(self.keep_newest_tags is not None or self.expire_untagged_after_days is not None
                    or self.expire_tags)


@dataclass(frozen=True)
class Lifecycle:
    policies: tuple[RepositoryPolicy, ...] = ()
    upload_max_age_hours: float = 24.0
    gc_grace_hours: float = 24.0
    gc_interval_hours: float = 24.0
    delete_manifests: bool = True
    delete_blobs: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.upload_max_age_hours < UPLOAD_TTL_HOURS:
            raise PolicyError(f"BERTH_UPLOAD_MAX_AGE_HOURS must be at least 0 and below {UPLOAD_TTL_HOURS} "
                              "(the upload record's TTL, which would otherwise drop it before its bytes)")
        if self.gc_grace_hours < 0 or self.gc_interval_hours < 0:
            raise PolicyError("BERTH_GC_GRACE_HOURS and BERTH_GC_INTERVAL_HOURS must be at least 0")

    def policy_for(self, repo: str) -> RepositoryPolicy | None:
        """The first policy whose pattern matches: one policy per repository, in file order."""
        return next((p for p in self.policies if fnmatchcase(repo, p.match)), None)

    @property
    def upload_max_age(self) -> int:
        return int(self.upload_max_age_hours * HOUR)

    @property
    def gc_grace(self) -> int:
        return int(self.gc_grace_hours * HOUR)

    @property
    def gc_interval(self) -> int:
        return int(self.gc_interval_hours * HOUR)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Lifecycle:
        inline, path = environ.get("BERTH_LIFECYCLE"), environ.get("BERTH_LIFECYCLE_FILE")
        if inline and path:
            raise PolicyError("set BERTH_LIFECYCLE or BERTH_LIFECYCLE_FILE, not both")
        if path:
            with open(path, encoding="utf-8") as file:
                inline = file.read()
        return cls(
            policies=parse_policies(inline) if inline else (),
            upload_max_age_hours=_number(environ, "BERTH_UPLOAD_MAX_AGE_HOURS", 24.0),
            gc_grace_hours=_number(environ, "BERTH_GC_GRACE_HOURS", 24.0),
            gc_interval_hours=_number(environ, "BERTH_GC_INTERVAL_HOURS", 24.0),
            delete_manifests=_switch(environ, "BERTH_DELETE_MANIFESTS"),
            delete_blobs=_switch(environ, "BERTH_DELETE_BLOBS"),
        )


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(environ.get(name) or default)
    except ValueError:
        raise PolicyError(f"{name} must be a number of hours") from None


def _switch(environ: Mapping[str, str], name: str) -> bool:
    value = (environ.get(name) or "true").strip().lower()
    if value not in ("true", "false"):
        raise PolicyError(f"{name} must be true or false")
    return value == "true"


def parse_policies(text: str) -> tuple[RepositoryPolicy, ...]:
    try:
        document = json.loads(text)
    except ValueError as err:
        raise PolicyError(f"the lifecycle document is not JSON: {err}") from None
    if not isinstance(document, dict) or set(document) != {"repositories"} or not isinstance(
            document["repositories"], list):
        raise PolicyError('the lifecycle document must be {"repositories": [policy, ...]}')
    return tuple(_policy(entry, f"repositories[{i}]") for i, entry in enumerate(document["repositories"]))


def _policy(entry: Any, where: str) -> RepositoryPolicy:
    if not isinstance(entry, dict):
        raise PolicyError(f"{where} must be an object")
    unknown = set(entry) - _POLICY_KEYS
    if unknown:
        raise PolicyError(f"{where} has unknown keys {sorted(unknown)}; known: {sorted(_POLICY_KEYS)}")
    keep = entry.get("keep_newest_tags")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise PolicyError(f"{where}.keep_newest_tags must be an integer of at least 1")
    untagged = entry.get("expire_untagged_after_days")
    return RepositoryPolicy(
        match=_pattern(entry.get("match"), f"{where}.match"),
        immutable_tags=_immutable(entry.get("immutable_tags", False), f"{where}.immutable_tags"),
        keep_newest_tags=keep,
        expire_untagged_after_days=None if untagged is None else _days(untagged, f"{where}.expire_untagged_after_days"),
        expire_tags=tuple(_tag_expiry(rule, f"{where}.expire_tags[{i}]")
                          for i, rule in enumerate(_list(entry.get("expire_tags", []), f"{where}.expire_tags"))),
    )


def _pattern(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyError(f"{where} must be a non-empty glob pattern")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise PolicyError(f"{where} must be a list")
    return value


def _immutable(value: Any, where: str) -> tuple[str, ...]:
    """`true` makes every tag immutable, a list of globs only the tags matching one."""
    if isinstance(value, bool):
        return ("*",) if value else ()
    return tuple(_pattern(p, f"{where}[{i}]") for i, p in enumerate(_list(value, where)))


def _days(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PolicyError(f"{where} must be a number of days, at least 0")
    return float(value)


def _tag_expiry(rule: Any, where: str) -> TagExpiry:
    if not isinstance(rule, dict) or set(rule) != {"match", "after_days"}:
        raise PolicyError(f'{where} must be {{"match": "<tag glob>", "after_days": <days>}}')
    return TagExpiry(_pattern(rule["match"], f"{where}.match"), _days(rule["after_days"], f"{where}.after_days"))
