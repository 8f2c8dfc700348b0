"""What the web pages (chalicelib/ui) read: a repository's whole partition in one Query, which
holds everything a repository or manifest page shows (tags, manifests with their bodies,
links with their sizes and keys, referrers). Reads only."""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib.storage.dynamo import MetadataStore
from chalicelib.storage.keys import repo_pk
from chalicelib.storage.manifests import manifest_record
from chalicelib.storage.records import ManifestRecord


@dataclass(frozen=True)
class TagEntry:
    name: str
    digest: str
    pushed: int  # when the tag was last pushed (epoch seconds)


@dataclass(frozen=True)
class ReferrerEntry:
    subject: str
    digest: str
    artifact_type: str | None


@dataclass(frozen=True)
class LinkEntry:
    key: str  # the S3 object holding the blob
    size: int


@dataclass
class RepositoryContents:
    tags: list[TagEntry] = field(default_factory=list)
    manifests: dict[str, ManifestRecord] = field(default_factory=dict)
    links: dict[str, LinkEntry] = field(default_factory=dict)
    referrers: list[ReferrerEntry] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.tags or self.manifests or self.links)


class BrowseStore(MetadataStore):
    def contents(self, repo: str) -> RepositoryContents:
        """Every item of the repository. Tag items are copies of their manifests; only their
        name, digest and push time are kept."""
        found = RepositoryContents()
        for item in self._query(repo_pk(repo), None):
            kind, _, rest = item["sk"].partition("#")
            if kind == "tag":
                found.tags.append(TagEntry(rest.rsplit("#", 1)[1], item["digest"], int(item.get("created") or 0)))
            elif kind == "manifest":
                found.manifests[rest] = manifest_record(item)
            elif kind == "link":
                found.links[rest] = LinkEntry(item["key"], int(item["size"]))
            elif kind == "referrer":
                subject, _, digest = rest.rpartition("#")
                found.referrers.append(ReferrerEntry(subject, digest, item.get("artifact_type")))
        return found
