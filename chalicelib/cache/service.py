"""Pulls through the cache: manifests, blobs, referrers and tag lists of repositories under a
rule's prefix, from the cache when it can, from the upstream when it must (docs/cache.md).

- A tag is served from the cache for the rule's TTL, then revalidated with one upstream HEAD;
  when the upstream cannot answer, the cached manifest is served, marked stale.
- A manifest by digest, once cached, is served for ever: its bytes cannot change.
- Blob bytes never pass through here. A cached blob is a redirect to S3. Otherwise the
  upstream is asked where the blob is and the client is sent there (registries answer blob
  GETs with a redirect to their storage or CDN), while the copier brings the blob into S3
  in the background. Only an upstream that serves the bytes itself behind credentials makes
  a first pull wait for the copy.
- Every manifest is checked against its digest (the one asked for, or the one the upstream
  promised) before it is stored or served; the copier checks blobs the same way.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from chalicelib.cache.counters import CacheCounters
from chalicelib.cache.rules import CacheConfig, Rule
from chalicelib.cache.upstream import Direct, NotFound, Unavailable, UpstreamManifest, UpstreamRegistry
from chalicelib.digest.digests import Digest, looks_like_digest
from chalicelib.errors import Oci, RegistryError
from chalicelib.manifests.parse import MAX_MANIFEST_BYTES, Manifest, parse_manifest
from chalicelib.manifests.service import INLINE_LIMIT, manifest_key
from chalicelib.naming import valid_tag
from chalicelib.storage.bodies import Holder, drop_body
from chalicelib.storage.cache import COPYING, DONE, FAILED, CachedBlob, CachedManifest, CacheStore, blob_pk, repo_pk
from chalicelib.storage.records import ManifestRecord
from chalicelib.storage.s3 import BlobStore

log = logging.getLogger("berth.cache")
TOUCH_SECONDS = 3600  # `last_pulled` is written at most this often per item: eviction needs no more
WAIT_SECONDS = 20.0  # how long a blob GET may wait for a copy (API Gateway allows 29 s)
COPY_STALL_SECONDS = 20 * 60  # a copy without progress this long is queued again
RETRY_FAILED_SECONDS = 10 * 60  # a failed copy is tried again by a pull after this long
LISTING_LIMIT = 4 * 1024 * 1024  # the most of an upstream listing read
CACHE_PREFIX = "cache/"  # S3 keys of cached blobs and large cached manifests
_FAILURES = {"digest": Oci.UPSTREAM_DIGEST, "missing": Oci.BLOB_UNKNOWN}


@dataclass(frozen=True)
class Served:
    """A manifest as served, and the `Cache-Status` (RFC 9211) saying how."""

    record: ManifestRecord
    body: bytes
    status: str
    stale: bool = False


@dataclass(frozen=True)
class Fetched:
    """A manifest the upstream sent, checked."""

    record: ManifestRecord
    body: bytes
    manifest: Manifest
    fetched: int


@dataclass(frozen=True)
class NotedBody:
    """A manifest body written to S3, and the note of its unsettled record."""

    key: str
    note: str


@dataclass(frozen=True)
class BlobAnswer:
    status: int  # 200 (HEAD) or 307
    headers: dict[str, str] = field(default_factory=dict)


def unavailable(err: Unavailable) -> RegistryError:
    """What a client hears when the upstream failed and the cache has nothing to serve instead."""
    if err.status == 429:
        headers = {"Retry-After": err.retry_after} if err.retry_after else {}
        return RegistryError(Oci.TOOMANYREQUESTS, "the upstream registry is rate-limiting; try again later",
                             headers=headers)
    return RegistryError(Oci.UPSTREAM_UNAVAILABLE, f"the upstream registry could not answer: {err.reason}")


class PullThrough:
    def __init__(self, config: CacheConfig, store: CacheStore, blobs: BlobStore,
                 upstream: Callable[[Rule], UpstreamRegistry], enqueue: Callable[[str], None],
                 counters: CacheCounters, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, wait_seconds: float = WAIT_SECONDS) -> None:
        self.config = config
        self._store = store
        self._blobs = blobs
        self._upstream = upstream
        self._enqueue = enqueue
        self.counters = counters
        self._clock = clock
        self._sleep = sleep
        self.wait_seconds = wait_seconds  # how long a blob GET waits for a copy it cannot redirect past

    def covers(self, name: str) -> bool:
        return self.config.rule_for(name) is not None

    def _rule(self, name: str) -> Rule:
        rule = self.config.rule_for(name)
        assert rule is not None, "dispatch sends only covered names here"
        return rule

    def _now(self) -> int:
        return int(self._clock())

    @contextmanager
    def _counting(self) -> Iterator[None]:
        try:
            yield
        finally:
            self.counters.flush()

    # ---- manifests ---------------------------------------------------------------------------

    def manifest(self, name: str, reference: str) -> Served:
        with self._counting():
            rule = self._rule(name)
            if looks_like_digest(reference):
                return self._by_digest(rule, name, Digest.parse(reference))
            if not valid_tag(reference):
                raise RegistryError(Oci.MANIFEST_UNKNOWN, detail={"reference": reference[:200]})
            return self._by_tag(rule, name, reference)

    def _by_digest(self, rule: Rule, name: str, digest: Digest) -> Served:
        cached = self._store.get_manifest(name, str(digest))
        if cached is not None:
            return self._hit(cached, "hit", self._pulled(name, f"manifest#{digest}", cached))
        fetched = self._fetch(rule, name, str(digest), digest)
        stored = self._stored_manifest(name, fetched)
        self.counters.add(misses=1)
        return Served(stored.record, fetched.body, "fwd=miss; stored")

    def _by_tag(self, rule: Rule, name: str, tag: str) -> Served:
        cached, now = self._store.get_tag(name, tag), self._now()
        if cached is not None and now - cached.fetched < rule.ttl_seconds:
            return self._hit(cached, f"hit; ttl={rule.ttl_seconds - (now - cached.fetched)}",
                             self._pulled(name, f"tag#{tag}", cached))
        upstream_repo = rule.upstream_name(name)
        try:
            if cached is None:
                return self._fetch_tag(rule, name, tag, None, "fwd=miss; stored", cached)
            head = self._upstream(rule).manifest(upstream_repo, tag, "HEAD")
            if head.digest == cached.record.digest:
                self._store.revalidated(name, tag, cached.record.digest, cached.fetched, now)
                body = self._pulled(name, f"tag#{tag}", cached)
                self.counters.add(revalidated=1)
                return Served(cached.record, body, "fwd=stale; fwd-status=304")
            changed = Digest.parse(head.digest) if head.digest and looks_like_digest(head.digest) else None
            return self._fetch_tag(rule, name, tag, changed, "fwd=stale; fwd-status=200; stored", cached)
        except NotFound as err:
            if cached is not None and err.status != 404:
                # Refused rather than gone (credentials revoked, say): what was cached stays served.
                return self._stale(rule, name, tag, cached, f"the upstream answered {err.status}")
            if cached is not None:
                self._forget_tag(name, tag, cached)
            raise RegistryError(Oci.MANIFEST_UNKNOWN, detail={"reference": tag}) from None
        except Unavailable as err:
            if cached is None:
                raise unavailable(err) from None
            return self._stale(rule, name, tag, cached, err.reason)
        except RegistryError as err:
            # The upstream's answer was refused (a wrong digest, an unservable manifest): what
            # the cache checked before is still good to serve.
            if cached is None or err.kind not in (Oci.UPSTREAM_DIGEST, Oci.UPSTREAM_INVALID):
                raise
            return self._stale(rule, name, tag, cached, err.message)

    def _stale(self, rule: Rule, name: str, tag: str, cached: CachedManifest, reason: str) -> Served:
        log.warning("serving %s:%s stale: %s", name, tag, reason)
        self.counters.add(stale=1)
        body = self._pulled(name, f"tag#{tag}", cached)
        past = self._now() - cached.fetched - rule.ttl_seconds
        return Served(cached.record, body, f'hit; ttl={-past}; detail="upstream unavailable"', stale=True)

    def _fetch_tag(self, rule: Rule, name: str, tag: str, digest: Digest | None, status: str,
                   cached: CachedManifest | None) -> Served:
        """The tag from upstream (by the digest a HEAD named, when it named one: what it names
        cannot change under us), stored as the tag and as the manifest by digest."""
        fetched = self._fetch(rule, name, str(digest) if digest else tag, digest)
        stored = self._stored_manifest(name, fetched)
        holder = self._store.tag_holder(name, tag)
        ours = self._put_body(holder, fetched.record.digest, fetched.body)
        # The body the tag named when read goes once the tag names another: noted first, so that
        # if the write's outcome is lost the purge still deletes it.
        old = cached.record.body_key if cached else None
        if old:
            self._store.note_body(holder, old)
        tag_record = ManifestRecord(stored.record.digest, stored.record.media_type, stored.record.size,
                                    None if ours else fetched.body, ours.key if ours else None)
        written, replaced = self._store.put_tag(name, tag, CachedManifest(tag_record, fetched.fetched,
                                                                          fetched.fetched))
        if ours and written:
            self._store.settle_body(ours.key, ours.note)
        leftover = replaced if written else (ours.key if ours else None)
        if leftover:
            drop_body(self._store, self._blobs, leftover)
        # An `old` that is not the leftover was replaced by another fetch, or by this one with
        # its answer lost: the purge settles it.
        self.counters.add(misses=1)
        return Served(stored.record, fetched.body, status)

    def _fetch(self, rule: Rule, name: str, reference: str, expected: Digest | None) -> Fetched:
        """A manifest from upstream, checked: its bytes must match the digest asked for, or
        else the one the upstream promised, and it must be a manifest Berth can serve."""
        answer: UpstreamManifest = self._upstream(rule).manifest(rule.upstream_name(name), reference, "GET",
                                                                 MAX_MANIFEST_BYTES)
        promised = expected
        if promised is None and answer.digest:
            try:
                promised = Digest.parse(answer.digest)
            except RegistryError:
                raise RegistryError(Oci.UPSTREAM_INVALID, "the upstream sent a malformed Docker-Content-Digest",
                                    detail={"reference": reference}) from None
        actual = Digest.of(answer.body, promised.algorithm if promised else "sha256")
        if promised is not None and actual != promised:
            log.warning("upstream %s sent %s for %s@%s, which promised %s", rule.host, actual, name, reference,
                        promised)
            raise RegistryError(Oci.UPSTREAM_DIGEST, "the upstream's manifest does not match its digest; "
                                "nothing was cached", detail={"expected": str(promised), "received": str(actual)})
        try:
            manifest = parse_manifest(answer.body, answer.media_type)
        except RegistryError as err:
            raise RegistryError(Oci.UPSTREAM_INVALID, f"the upstream's manifest cannot be served: {err.message}",
                                detail={"reference": reference}) from None
        record = ManifestRecord(str(actual), manifest.media_type, len(answer.body), answer.body)
        return Fetched(record, answer.body, manifest, self._now())

    def _stored_manifest(self, name: str, fetched: Fetched) -> CachedManifest:
        digest = fetched.record.digest
        body = self._put_body(self._store.manifest_holder(name, digest), digest, fetched.body)
        record = ManifestRecord(digest, fetched.record.media_type, fetched.record.size,
                                None if body else fetched.body, body.key if body else None)
        cached = CachedManifest(record, fetched.fetched, fetched.fetched)
        stored = self._store.put_manifest(name, cached)
        if body and stored:
            self._store.settle_body(body.key, body.note)
        elif body:
            drop_body(self._store, self._blobs, body.key)  # the stored one has its own copy
        return cached

    def _put_body(self, holder: Holder, digest: str, body: bytes) -> NotedBody | None:
        """Bodies too big for a table item go to S3, one object per record holding it, noted as
        unsettled first (the purge deletes it should this request die before `holder` names it)."""
        if len(body) <= INLINE_LIMIT:
            return None
        key = CACHE_PREFIX + manifest_key(Digest.parse(digest))
        note = self._store.note_body(holder, key)
        self._blobs.put(key, body)
        return NotedBody(key, note)

    def _body(self, cached: CachedManifest) -> bytes:
        record = cached.record
        return record.body if record.body is not None else self._blobs.read(record.body_key or "")

    def _hit(self, cached: CachedManifest, status: str, body: bytes) -> Served:
        self.counters.add(hits=1, bytes_saved=cached.record.size)
        return Served(cached.record, body, status)

    def _forget_tag(self, name: str, tag: str, cached: CachedManifest) -> None:
        if cached.record.body_key:  # should this request die before deleting it
            self._store.note_body(self._store.tag_holder(name, tag), cached.record.body_key)
        dropped = self._store.forget_tag(name, tag, cached.record.digest)
        if dropped and dropped.get("body_key"):
            drop_body(self._store, self._blobs, dropped["body_key"])

    def _pulled(self, name: str, sk: str, cached: CachedManifest) -> bytes:
        """The body to serve (read once), and the pull noted for eviction (at most hourly per
        item), with the pull of the blobs an image manifest names: a host that has the layers
        pulls only the manifest."""
        body, now = self._body(cached), self._now()
        if now - cached.last_pulled < TOUCH_SECONDS:
            return body
        self._store.touch(repo_pk(name), sk, now)
        try:
            blobs = parse_manifest(body, cached.record.media_type).blobs
        except RegistryError:
            return body
        for descriptor in blobs:
            self._store.touch(blob_pk(str(descriptor.digest)), "blob", now)
        return body

    # ---- blobs ---------------------------------------------------------------------------------

    def blob(self, name: str, digest_text: str, method: str) -> BlobAnswer:
        with self._counting():
            return self._blob(self._rule(name), name, Digest.parse(digest_text), method)

    def _blob(self, rule: Rule, name: str, digest: Digest, method: str) -> BlobAnswer:
        link, blob = self._store.link_and_blob(name, str(digest))
        cached, now = blob is not None and blob.state == DONE, self._now()
        upstream, upstream_repo = self._upstream(rule), rule.upstream_name(name)
        try:
            if method == "HEAD" and not cached or link is None and cached:
                # Only the upstream says whether this repository holds the blob: a digest known
                # from another repository (or another upstream) proves nothing here.
                size = upstream.blob_size(upstream_repo, str(digest))
                if link is None:
                    self._store.link(name, str(digest), now)
                    link = {"last_pulled": now}
                if not cached:
                    self.counters.add(misses=1)
                    return BlobAnswer(200, self._blob_headers(digest, size))
            if blob is not None and cached:
                self._blob_pulled(name, digest, blob, link, now)
                self.counters.add(hits=1, bytes_saved=blob.size or 0)
                return self._from_s3(blob, method)
            where = upstream.locate_blob(upstream_repo, str(digest))  # the upstream's answer confirms it
        except NotFound:
            raise RegistryError(Oci.BLOB_UNKNOWN, detail={"digest": str(digest)}) from None
        except Unavailable as err:
            raise unavailable(err) from None
        if link is None:
            self._store.link(name, str(digest), now)
        self.counters.add(misses=1)
        self._ensure_copy(rule, upstream_repo, digest, blob, now)
        if isinstance(where, Direct) and not where.open:
            return self._await_copy(name, digest)
        return BlobAnswer(307, {"Location": where.url, **self._blob_headers(digest, None)})

    @staticmethod
    def _blob_headers(digest: Digest, size: int | None) -> dict[str, str]:
        headers = {"Docker-Content-Digest": str(digest)}
        if size is not None:
            headers["Content-Length"] = str(size)
        return headers

    def _from_s3(self, blob: CachedBlob, method: str) -> BlobAnswer:
        digest = Digest.parse(blob.digest)
        if method == "HEAD":
            return BlobAnswer(200, self._blob_headers(digest, blob.size))
        return BlobAnswer(307, {"Location": self._blobs.presigned_get(blob.key), **self._blob_headers(digest, None)})

    def _blob_pulled(self, name: str, digest: Digest, blob: CachedBlob, link: dict[str, object] | None,
                     now: int) -> None:
        if now - blob.last_pulled >= TOUCH_SECONDS:
            self._store.touch(blob_pk(str(digest)), "blob", now)
        if link is not None and now - int(str(link.get("last_pulled", 0))) >= TOUCH_SECONDS:
            self._store.touch(repo_pk(name), f"link#{digest}", now)

    def _ensure_copy(self, rule: Rule, upstream_repo: str, digest: Digest, blob: CachedBlob | None, now: int) -> None:
        """Queue the blob's copy into S3 unless it is queued already: of concurrent first pulls
        one queues it. A copy failed a while ago, or stalled, is queued again."""
        queue = False
        if blob is None or blob.state == FAILED:
            fresh = CachedBlob(str(digest), COPYING, f"{CACHE_PREFIX}blobs/{uuid.uuid4().hex}", rule.prefix,
                               upstream_repo, updated=now, last_pulled=now)
            queue = self._store.start_copy(fresh, now - RETRY_FAILED_SECONDS)
        elif blob.state == COPYING and now - blob.updated > COPY_STALL_SECONDS and (blob.lease_until or 0) < now:
            queue = self._store.nudge_copy(str(digest), blob.updated, now)
        if queue:
            try:
                self._enqueue(str(digest))
            except Exception:
                # The pull is served all the same; the copy looks stalled and a later pull queues it.
                log.exception("could not queue the copy of %s", digest)

    def _await_copy(self, name: str, digest: Digest) -> BlobAnswer:
        """An upstream that serves blob bytes itself, behind credentials, gives no URL a client
        could use: wait for the copy, then redirect to S3; still copying at the deadline, send
        the client back here (it follows the redirect and waits again)."""
        deadline, delay = time.monotonic() + self.wait_seconds, 0.1
        while True:
            blob = self._store.get_blob(str(digest))
            if blob is not None and blob.state == DONE:
                return self._from_s3(blob, "GET")
            if blob is None or blob.state == FAILED:
                kind = _FAILURES.get(blob.failure or "", Oci.UPSTREAM_UNAVAILABLE) if blob else Oci.UPSTREAM_UNAVAILABLE
                raise RegistryError(kind, "the blob could not be copied from the upstream registry",
                                    detail={"digest": str(digest)})
            if time.monotonic() + delay > deadline:
                return BlobAnswer(307, {"Location": f"/v2/{name}/blobs/{digest}", "Retry-After": "1",
                                        **self._blob_headers(digest, None)})
            self._sleep(delay)
            delay = min(delay * 2, 1.0)

    # ---- referrers and tag lists ------------------------------------------------------------------

    def referrers(self, name: str, digest_text: str) -> list[dict[str, object]]:
        """The upstream's referrers of a manifest (its referrers API, else the fallback tag
        `<alg>-<hex>`), cached like a tag: fresh for the TTL, stale when the upstream fails."""
        with self._counting():
            rule, digest = self._rule(name), Digest.parse(digest_text)
            cached, now = self._store.get_referrers(name, str(digest)), self._now()
            if cached is not None and now - cached.fetched < rule.ttl_seconds:
                self.counters.add(hits=1)
                return _descriptors(cached.body)
            try:
                body = self._upstream(rule).referrers(rule.upstream_name(name), str(digest), LISTING_LIMIT)
                _descriptors(body)  # an index, or refused
            except NotFound:
                body = self._fallback_referrers(name, digest)
            except (Unavailable, RegistryError) as err:
                if cached is None:
                    raise unavailable(err) if isinstance(err, Unavailable) else err from None
                self.counters.add(stale=1)
                return _descriptors(cached.body)
            self._store.put_referrers(name, str(digest), body, now)
            self.counters.add(misses=1)
            return _descriptors(body)

    def _fallback_referrers(self, name: str, digest: Digest) -> bytes:
        try:
            served = self._by_tag(self._rule(name), name, f"{digest.algorithm}-{digest.hex}")
        except RegistryError as err:
            if err.kind is Oci.MANIFEST_UNKNOWN:
                return json.dumps({"manifests": []}).encode()
            raise
        return served.body

    def tags(self, name: str, query: dict[str, str]) -> tuple[dict[str, object], str | None]:
        """The upstream's tag list under the cached name, never cached (a listing is cheap
        upstream and stale at once); its `Link` rewritten to point here."""
        with self._counting():
            rule = self._rule(name)
            upstream_repo = rule.upstream_name(name)
            try:
                body, link = self._upstream(rule).tags(upstream_repo, query, LISTING_LIMIT)
                doc = json.loads(body)
            except NotFound:
                raise RegistryError(Oci.NAME_UNKNOWN, detail={"name": name}) from None
            except Unavailable as err:
                raise unavailable(err) from None
            except ValueError:
                raise RegistryError(Oci.UPSTREAM_UNAVAILABLE, "the upstream's tag list is not JSON") from None
            tags = doc.get("tags") if isinstance(doc, dict) else None
            if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
                raise RegistryError(Oci.UPSTREAM_UNAVAILABLE, "the upstream's tag list is malformed")
            if link is not None:
                link = link.replace(f"/v2/{upstream_repo}/tags/list", f"/v2/{name}/tags/list", 1)
                link = link if link.startswith(f"</v2/{name}/tags/list") else None  # only our own path
            return {"name": name, "tags": tags or []}, link


def _descriptors(body: bytes) -> list[dict[str, object]]:
    """The descriptors of a referrers index (an image index), checked for shape."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise RegistryError(Oci.UPSTREAM_INVALID, "the upstream's referrers answer is not JSON") from None
    manifests = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(manifests, list) or not all(isinstance(d, dict) for d in manifests):
        raise RegistryError(Oci.UPSTREAM_INVALID, "the upstream's referrers answer is not an index")
    return manifests
