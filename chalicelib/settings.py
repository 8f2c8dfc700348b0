"""Configuration, read once from the environment (set per stage in .chalice/config.json)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from chalicelib.cache.rules import CacheConfig
from chalicelib.lifecycle.policy import Lifecycle

AUTH_MODES = ("none", "basic", "token")
REFRESH_TTL = 7 * 24 * 3600
EVENT_ACTIONS = ("push", "tag", "delete", "pull")  # what BERTH_EVENTS may select (docs/events.md)


@dataclass(frozen=True)
class Settings:
    bucket: str
    table: str
    region: str | None
    presign_seconds: int
    auth_mode: str = "none"  # none | basic | token
    service: str = "berth"  # the token audience and the Basic realm
    public_url: str | None = None  # where clients reach the registry; else taken from each request
    token_ttl: int = 300
    refresh_ttl: int = REFRESH_TTL  # a refresh token's whole life, counted from the login
    signing_secret_id: str | None = None  # Secrets Manager secret holding the token signing key
    verify_queue: str = "berth-verify"  # SQS queue S3 notifies of direct uploads (name, for the trigger)
    verify_queue_url: str | None = None  # the same queue, for continuation messages
    event_bus: str | None = None  # EventBridge bus (name or ARN) for registry events; None: none sent
    event_actions: frozenset[str] = frozenset({"push", "tag", "delete"})  # pulls are opt-in: one event each
    lifecycle: Lifecycle = field(default_factory=Lifecycle)  # retention, immutability, purge, GC, delete switches
    # Keyless access (chalicelib/auth/keyless.py): how clients name this registry, which signed
    # STS requests must carry (default: BERTH_PUBLIC_URL's host); STS's URL in the local mode
    # (moto); and plain-HTTP OIDC issuers on this machine, for tests only.
    server_id: str | None = None
    sts_endpoint: str | None = None
    oidc_http_loopback: bool = False
    cache: CacheConfig = field(default_factory=CacheConfig)  # pull-through rules (BERTH_UPSTREAMS, docs/cache.md)

    def __post_init__(self) -> None:
        if self.auth_mode not in AUTH_MODES:
            raise ValueError(f"BERTH_AUTH must be one of {', '.join(AUTH_MODES)}, not {self.auth_mode!r}")
        if not self.event_actions <= set(EVENT_ACTIONS):
            raise ValueError(f"BERTH_EVENTS may name {', '.join(EVENT_ACTIONS)}, not {sorted(self.event_actions)}")

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            bucket=os.environ.get("BERTH_BUCKET", "berth-blobs"),
            table=os.environ.get("BERTH_TABLE", "berth"),
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
            presign_seconds=int(os.environ.get("BERTH_PRESIGN_SECONDS", "900")),
            auth_mode=os.environ.get("BERTH_AUTH", "none"),
            service=os.environ.get("BERTH_SERVICE", "berth"),
            public_url=os.environ.get("BERTH_PUBLIC_URL") or None,
            token_ttl=int(os.environ.get("BERTH_TOKEN_TTL", "300")),
            refresh_ttl=int(os.environ.get("BERTH_REFRESH_TTL", str(REFRESH_TTL))),
            signing_secret_id=os.environ.get("BERTH_SIGNING_SECRET_ID") or None,
            verify_queue=os.environ.get("BERTH_VERIFY_QUEUE", "berth-verify"),
            verify_queue_url=os.environ.get("BERTH_VERIFY_QUEUE_URL") or None,
            event_bus=os.environ.get("BERTH_EVENT_BUS") or None,
            event_actions=frozenset(a.strip() for a in os.environ.get("BERTH_EVENTS", "push,tag,delete").split(",")
                                    if a.strip()),
            lifecycle=Lifecycle.from_env(os.environ),
            server_id=os.environ.get("BERTH_SERVER_ID") or None,
            sts_endpoint=os.environ.get("BERTH_STS_ENDPOINT") or None,
            oidc_http_loopback=os.environ.get("BERTH_OIDC_ALLOW_HTTP_LOOPBACK", "").lower() in ("1", "true", "yes"),
            cache=CacheConfig.from_env(os.environ),
        )
