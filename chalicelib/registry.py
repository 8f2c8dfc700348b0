"""The registry's services, wired to storage once per Lambda container."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.auth.authenticator import Authenticator
from chalicelib.auth.keyless import KeylessLogin
from chalicelib.auth.keys import CachedRing
from chalicelib.auth.signing import SigningKeys
from chalicelib.events import EventPublisher
from chalicelib.manifests.service import Manifests
from chalicelib.settings import Settings
from chalicelib.storage.accounts import AccountStore
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.dynamo import MetadataStore
from chalicelib.storage.heartbeats import Heartbeats
from chalicelib.storage.s3 import BlobStore
from chalicelib.storage.secrets import SecretStore
from chalicelib.storage.throttle import FailureCounters
from chalicelib.storage.trust import TrustStore
from chalicelib.uploads.direct import DirectUploads
from chalicelib.uploads.service import Uploads
from chalicelib.uploads.verify import CONTINUE, Verifier

if TYPE_CHECKING:
    from chalicelib.cache.wiring import Cache


@dataclass
class Registry:
    settings: Settings
    blobs: BlobStore
    meta: MetadataStore
    uploads: Uploads
    manifests: Manifests
    accounts: AccountStore
    auth: Authenticator
    direct: DirectUploads
    verifier: Verifier
    signing_keys: SigningKeys
    heartbeats: Heartbeats  # when the scheduled functions last ran (chalicelib/diagnostics.py)
    clients: AwsClients  # what every store calls AWS through (chalicelib/snapstart.py; the web pages' stores)
    events: EventPublisher | None = None  # registry events on EventBridge, when BERTH_EVENT_BUS is set
    cache: Cache | None = None  # the pull-through cache, when BERTH_UPSTREAMS has rules

    @classmethod
    def build(cls, settings: Settings, clients: AwsClients | None = None) -> Registry:
        aws = clients or AwsClients(settings.region)
        blobs = BlobStore(aws, settings.bucket, settings.presign_seconds)
        meta = MetadataStore(aws, settings.table)
        accounts = AccountStore(aws, settings.table)

        secret = SecretStore(aws, settings.signing_secret_id) if settings.signing_secret_id else None
        keys = SigningKeys(accounts, secret)

        def continue_later(uuid: str) -> None:
            if not settings.verify_queue_url:
                raise RuntimeError("BERTH_VERIFY_QUEUE_URL is not set: a long verification cannot continue")
            aws.sqs.send_message(QueueUrl=settings.verify_queue_url, MessageBody=json.dumps({CONTINUE: uuid}))

        uploads = Uploads(blobs, meta)
        keyless = KeylessLogin(settings, TrustStore(aws, settings.table))  # ID tokens, signed STS requests
        auth = Authenticator(settings, accounts, CachedRing(keys.load), FailureCounters(aws, settings.table), keyless)
        cache = None
        if settings.cache.enabled:  # imported only then: a registry without rules pays nothing at cold start
            from chalicelib.cache.wiring import build_cache

            cache = build_cache(settings.cache, aws, blobs, settings.table)
        return cls(settings, blobs, meta, uploads, Manifests(blobs, meta, settings.lifecycle), accounts,
                   auth, DirectUploads(blobs, meta, uploads), Verifier(blobs, meta, uploads, continue_later), keys,
                   Heartbeats(aws, settings.table), aws, EventPublisher.build(aws, settings), cache)
