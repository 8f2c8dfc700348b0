"""What each page shows, read from storage: repositories with their totals, a repository's tags
and untagged manifests, one manifest with its platforms, layers, config and referrers.

Callers decide who may see what (chalicelib/ui/views.py); these readers take the repository
names they are given. Reads that do not depend on each other run side by side, and image
configs (immutable, named by digest) are remembered per container.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from chalicelib.digest.digests import looks_like_digest
from chalicelib.manifests.mediatypes import INDEXES
from chalicelib.manifests.service import Manifests
from chalicelib.naming import valid_tag
from chalicelib.storage.browse import BrowseStore, RepositoryContents
from chalicelib.storage.dynamo import MetadataStore
from chalicelib.storage.records import ManifestRecord
from chalicelib.storage.s3 import BlobStore, MissingObject
from chalicelib.ui.model import ConfigView, Descriptor, ManifestView, read_config, read_manifest

# Reads at once: a page's repositories, or its image configs.
PARALLEL_READS = 8
# Configs are small; one larger than this is not read for a page.
MAX_CONFIG_BYTES = 1024 * 1024
_CACHED_CONFIGS = 2048
UNTAGGED_SHOWN = 200

T = TypeVar("T")
R = TypeVar("R")


def side_by_side(work: Callable[[T], R], items: list[T]) -> list[R]:
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(PARALLEL_READS, len(items))) as pool:
        return list(pool.map(work, items))


class _ConfigCache:
    """Image configs by digest: the same bytes wherever they are stored, so one container may
    remember what it read, whoever asked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._configs: dict[str, ConfigView | None] = {}

    def get(self, digest: str) -> tuple[bool, ConfigView | None]:
        with self._lock:
            return (digest in self._configs), self._configs.get(digest)

    def put(self, digest: str, config: ConfigView | None) -> None:
        with self._lock:
            if len(self._configs) >= _CACHED_CONFIGS:
                self._configs.clear()
            self._configs[digest] = config


CONFIGS = _ConfigCache()


@dataclass(frozen=True)
class RepositorySummary:
    name: str
    tags: int
    size: int  # bytes of the blobs linked in the repository
    last_push: int | None


@dataclass(frozen=True)
class ManifestSummary:
    digest: str
    view: ManifestView
    pushed: int
    size: int  # what a pull downloads; for an index, every platform's
    platforms: tuple[str, ...]
    referrers: int


@dataclass(frozen=True)
class TagRow:
    name: str
    pushed: int
    manifest: ManifestSummary


@dataclass(frozen=True)
class UntaggedRow:
    manifest: ManifestSummary
    indexes: tuple[str, ...]  # indexes in the repository listing it
    subject: str | None  # what it refers to, for a referrer


@dataclass
class RepositoryPage:
    name: str
    tags: list[TagRow]  # a page of them, newest first
    tag_total: int
    untagged: list[UntaggedRow] = field(default_factory=list)
    untagged_total: int = 0
    references: frozenset[str] = frozenset()  # every tag and digest it holds


@dataclass
class ManifestPage:
    name: str
    tag: str | None
    record: ManifestRecord
    view: ManifestView
    size: int
    tags: list[str]  # every tag naming it
    children: list[tuple[Descriptor, ManifestSummary | None]]  # an index's platforms
    config: ConfigView | None
    config_note: str | None  # why there is no config to show
    referrers: list[Descriptor]
    indexes: list[str]  # indexes in the repository listing it


class Browser:
    def __init__(self, store: BrowseStore, meta: MetadataStore, blobs: BlobStore, manifests: Manifests) -> None:
        self._store = store
        self._meta = meta
        self._blobs = blobs
        self._manifests = manifests

    # ---- repositories --------------------------------------------------------------------

    def repository_names(self, visible: Callable[[str], bool], search: str, after: str | None,
                         count: int) -> tuple[list[str], bool]:
        """Up to `count` names after `after` that contain `search` and are `visible`, and
        whether more follow. The catalog is read a page at a time until the page is full."""
        found: list[str] = []
        last = after
        while True:
            page = self._meta.list_repositories(200, last)
            for name in page.items:
                if search in name and visible(name):
                    if len(found) == count:
                        return found, True
                    found.append(name)
            if not page.more or not page.items:
                return found, False
            last = page.items[-1]

    def summaries(self, names: list[str]) -> list[RepositorySummary]:
        return side_by_side(self._summary, names)

    def _summary(self, name: str) -> RepositorySummary:
        contents = self._store.contents(name)
        pushes = [t.pushed for t in contents.tags] + [m.created or 0 for m in contents.manifests.values()]
        return RepositorySummary(name, len(contents.tags), sum(link.size for link in contents.links.values()),
                                 max(pushes) if pushes else None)

    # ---- one repository ------------------------------------------------------------------

    def repository(self, name: str, start: int, count: int, with_untagged: bool) -> RepositoryPage | None:
        """Tags newest first, `count` from `start`; with the untagged manifests (newest
        first, at most UNTAGGED_SHOWN) if asked."""
        contents = self._store.contents(name)
        if contents.empty:
            return None
        summaries = _Summaries(self, contents)
        tags = sorted((t for t in contents.tags if t.digest in contents.manifests), key=lambda t: (-t.pushed, t.name))
        shown = tags[start:start + count]
        untagged: list[str] = []
        if with_untagged:
            tagged = {t.digest for t in contents.tags}
            untagged = sorted((d for d in contents.manifests if d not in tagged),
                              key=lambda d: (-(contents.manifests[d].created or 0), d))
        summaries.read_platforms([t.digest for t in shown] + untagged[:UNTAGGED_SHOWN])
        page = RepositoryPage(name, [TagRow(t.name, t.pushed, summaries.of(t.digest)) for t in shown], len(tags),
                              references=frozenset([*(t.name for t in contents.tags), *contents.manifests]))
        if with_untagged:
            parents = _parents(summaries)
            subjects = {r.digest: r.subject for r in contents.referrers}
            page.untagged = [UntaggedRow(summaries.of(d), tuple(parents.get(d, ())), subjects.get(d))
                             for d in untagged[:UNTAGGED_SHOWN]]
            page.untagged_total = len(untagged)
        return page

    # ---- one manifest --------------------------------------------------------------------

    def manifest(self, name: str, reference: str) -> ManifestPage | None:
        contents = self._store.contents(name)
        digest = _resolve(contents, reference)
        if digest is None:
            return None
        record = contents.manifests[digest]
        summaries = _Summaries(self, contents)
        summary = summaries.of(digest)
        view = summary.view
        children = [(child, summaries.of(child.digest) if child.digest in contents.manifests else None)
                    for child in view.children]
        config, note = None, None
        if view.config is not None and view.is_image:
            config, note = self.config(contents, view.config)
        elif view.config is not None:
            note = f"an artifact: its config is {view.config.media_type}"
        referrers = [self._referrer(summaries, r.digest, r.artifact_type) for r in contents.referrers
                     if r.subject == digest and r.digest in contents.manifests]
        return ManifestPage(name, None if looks_like_digest(reference) else reference, record, view, summary.size,
                            sorted(t.name for t in contents.tags if t.digest == digest), children, config, note,
                            referrers, sorted(_parents(summaries).get(digest, ())))

    def _referrer(self, summaries: _Summaries, digest: str, artifact_type: str | None) -> Descriptor:
        summary = summaries.of(digest)
        record = summaries.contents.manifests[digest]
        return Descriptor(record.media_type, digest, record.size, summary.view.annotations,
                          artifact_type=artifact_type or summary.view.kind)

    def config(self, contents: RepositoryContents, descriptor: Descriptor) -> tuple[ConfigView | None, str | None]:
        known, cached = CONFIGS.get(descriptor.digest)
        if known:
            return cached, None if cached else "the config is not an image config"
        link = contents.links.get(descriptor.digest)
        if link is None:
            return None, "the config blob is not in this repository"
        if link.size > MAX_CONFIG_BYTES:
            return None, f"the config is larger than {MAX_CONFIG_BYTES} bytes: not shown"
        try:
            config = read_config(self._blobs.read(link.key))
        except MissingObject:
            return None, "the config blob is being removed"
        CONFIGS.put(descriptor.digest, config)
        return config, None if config else "the config is not an image config"

    def body(self, record: ManifestRecord) -> bytes:
        return self._manifests.body(record)


class _Summaries:
    """Each manifest of a repository summarised once: parsed, sized (an index by its platforms),
    its referrers counted, an image's platform taken from its config once read."""

    def __init__(self, browser: Browser, contents: RepositoryContents) -> None:
        self.browser = browser
        self.contents = contents
        self._views: dict[str, ManifestView] = {}
        self._platforms: dict[str, str] = {}  # config digest -> platform
        self._referrers: dict[str, int] = {}
        for referrer in contents.referrers:
            self._referrers[referrer.subject] = self._referrers.get(referrer.subject, 0) + 1

    def view(self, digest: str) -> ManifestView:
        view = self._views.get(digest)
        if view is None:
            record = self.contents.manifests[digest]
            view = self._views[digest] = read_manifest(self.browser.body(record), record.media_type)
        return view

    def of(self, digest: str) -> ManifestSummary:
        view = self.view(digest)
        size, platforms = view.compressed_size, tuple[str, ...]()
        if view.is_index:
            platforms = tuple(c.platform or "unknown" for c in view.children if c.runnable)
            size = sum(self._child_size(c) for c in view.children)
        elif view.config is not None and view.config.digest in self._platforms:
            platforms = (self._platforms[view.config.digest],)
        created = self.contents.manifests[digest].created or 0
        return ManifestSummary(digest, view, created, size, platforms, self._referrers.get(digest, 0))

    def _child_size(self, child: Descriptor) -> int:
        if child.digest not in self.contents.manifests:
            return 0
        return self.view(child.digest).compressed_size  # an index of indexes counts its own level only

    def read_platforms(self, digests: list[str]) -> None:
        """An image's platform is in its config: read those of these manifests, side by side."""
        wanted: dict[str, Descriptor] = {}
        for digest in digests:
            view = self.view(digest)
            if view.is_image and view.config is not None:
                wanted[view.config.digest] = view.config
        configs = side_by_side(lambda d: self.browser.config(self.contents, d)[0], list(wanted.values()))
        for digest, config in zip(wanted, configs, strict=True):
            if config is not None and config.platform:
                self._platforms[digest] = config.platform


def _resolve(contents: RepositoryContents, reference: str) -> str | None:
    if looks_like_digest(reference):
        return reference if reference in contents.manifests else None
    if not valid_tag(reference):
        return None
    digest = next((t.digest for t in contents.tags if t.name == reference), None)
    return digest if digest in contents.manifests else None


def _parents(summaries: _Summaries) -> dict[str, list[str]]:
    """For each manifest, the indexes in the repository that list it."""
    parents: dict[str, list[str]] = {}
    for digest, record in summaries.contents.manifests.items():
        if record.media_type in INDEXES:
            for child in summaries.view(digest).children:
                parents.setdefault(child.digest, []).append(digest)
    return parents
