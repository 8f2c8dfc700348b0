"""Which tags and manifests of one repository its retention rules expire. Pure logic.

Tags: those beyond the newest `keep_newest_tags` (by last push; tags pushed in the same second
as the last one kept are kept too, since nothing orders them), and those matching an
`expire_tags` pattern last pushed more than its `after_days` ago.

Manifests, only when `expire_untagged_after_days` is set: a manifest is kept when a remaining
tag names it, when it was last pushed within that many days, when a kept index lists it, or
when it refers (`subject`) to a kept manifest. Everything else expires. The expired ones come
in an order where a manifest follows every expired manifest that would have kept it, so the
collector never removes an index's child or a signature while their index or subject stays.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from chalicelib.lifecycle.policy import DAY, RepositoryPolicy


@dataclass(frozen=True)
class TagInfo:
    name: str
    digest: str
    created: int  # last push of the tag


@dataclass(frozen=True)
class ManifestInfo:
    digest: str
    created: int  # last push of the manifest, by tag or by digest
    subject: str | None = None
    children: tuple[str, ...] = ()  # what an index lists


@dataclass
class RetentionPlan:
    tags: list[TagInfo] = field(default_factory=list)
    manifests: list[ManifestInfo] = field(default_factory=list)  # in removal order
    # For each expired manifest: the expired manifests that must be removed before it.
    parents: dict[str, set[str]] = field(default_factory=dict)


def expired_tags(policy: RepositoryPolicy, tags: list[TagInfo], now: int) -> list[TagInfo]:
    expired: set[TagInfo] = set()
    keep = policy.keep_newest_tags
    if keep is not None and len(tags) > keep:
        newest_first = sorted(tags, key=lambda t: t.created, reverse=True)
        boundary = newest_first[keep - 1].created
        expired.update(t for t in newest_first[keep:] if t.created < boundary)
    for rule in policy.expire_tags:
        cutoff = now - rule.after_days * DAY
        expired.update(t for t in tags if fnmatchcase(t.name, rule.match) and t.created < cutoff)
    return sorted(expired, key=lambda t: t.name)


def plan(policy: RepositoryPolicy, tags: list[TagInfo], manifests: list[ManifestInfo], now: int) -> RetentionPlan:
    gone_tags = expired_tags(policy, tags, now)
    if policy.expire_untagged_after_days is None:
        return RetentionPlan(tags=gone_tags)
    cutoff = now - policy.expire_untagged_after_days * DAY
    gone = set(gone_tags)
    # keeps[a] lists what stays because `a` stays: an index's children, a subject's referrers.
    keeps: dict[str, list[str]] = defaultdict(list)
    for m in manifests:
        keeps[m.digest].extend(m.children)
        if m.subject:
            keeps[m.subject].append(m.digest)
    roots = {t.digest for t in tags if t not in gone} | {m.digest for m in manifests if m.created >= cutoff}
    kept = _reachable(roots, keeps)
    expired = {m.digest: m for m in manifests if m.digest not in kept}
    parents = {d: {p for p in expired if d in keeps[p]} for d in expired}
    return RetentionPlan(tags=gone_tags, manifests=[expired[d] for d in _parents_first(parents)], parents=parents)


def _reachable(roots: set[str], edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        digest = stack.pop()
        if digest not in seen:
            seen.add(digest)
            stack.extend(edges.get(digest, ()))
    return seen


def _parents_first(parents: dict[str, set[str]]) -> list[str]:
    """Digests ordered so each follows its parents; ties in digest order. Digests can form no
    cycle (a manifest cannot name a digest computed from its own), but should one appear the
    rest come in digest order rather than never."""
    waiting = {d: set(p) for d, p in parents.items()}
    order: list[str] = []
    while waiting:
        ready = sorted(d for d, p in waiting.items() if not p) or sorted(waiting)
        for digest in ready:
            del waiting[digest]
            for pending in waiting.values():
                pending.discard(digest)
        order.extend(ready)
    return order
