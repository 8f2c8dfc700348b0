"""The cache's parts wired to storage once per Lambda container: the upstream clients (one per
rule, keeping their tokens), the counters, and the copy queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib.cache.copier import Copier, message
from chalicelib.cache.counters import CacheCounters
from chalicelib.cache.credentials import Credentials
from chalicelib.cache.eviction import Eviction
from chalicelib.cache.rules import CacheConfig, Rule
from chalicelib.cache.service import PullThrough
from chalicelib.cache.upstream import UpstreamRegistry
from chalicelib.storage.cache import CacheStore
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.s3 import BlobStore


@dataclass
class Cache:
    config: CacheConfig
    store: CacheStore
    counters: CacheCounters
    pull: PullThrough
    copier: Copier
    eviction: Eviction


def build_cache(config: CacheConfig, aws: AwsClients, blobs: BlobStore, table: str,
                clock: Callable[[], float] = time.time) -> Cache:
    store = CacheStore(aws, table)
    counters = CacheCounters(store, config.stats_seconds, clock)
    credentials = Credentials(aws)
    lock = threading.Lock()
    registries: dict[str, UpstreamRegistry] = {}

    def upstream(rule: Rule) -> UpstreamRegistry:
        with lock:
            if rule.prefix not in registries:
                registries[rule.prefix] = UpstreamRegistry(rule, credentials.provider(rule.credentials),
                                                           lambda: counters.add(upstream_requests=1))
            return registries[rule.prefix]

    def copy_later(digest: str, delay: int = 0) -> None:
        if not config.copy_queue_url:
            raise RuntimeError("BERTH_CACHE_QUEUE_URL is not set: a blob pulled through the cache cannot be copied")
        aws.sqs.send_message(QueueUrl=config.copy_queue_url, MessageBody=message(digest), DelaySeconds=delay)

    return Cache(config, store, counters,
                 PullThrough(config, store, blobs, upstream, copy_later, counters, clock),
                 Copier(config, store, blobs, upstream, copy_later, counters, clock),
                 Eviction(config, store, blobs, counters, clock))
