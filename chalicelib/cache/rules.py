"""Which repositories are pulled through from which upstream registry: the rules document
(`BERTH_UPSTREAMS`) and the longest-prefix match. No AWS and no HTTP.

The document maps a repository prefix to its upstream; a prefix mapped to `null` is the
registry's own (for a Docker Hub mirror at the root that still hosts `team/` images):

    {"hub/": {"url": "https://registry-1.docker.io"},
     "ghcr/": {"url": "https://ghcr.io", "ttl_seconds": 60, "credentials": {"secret": "ghcr-pull"}},
     "": {"url": "https://registry-1.docker.io"}, "team/": null}

The upstream URL and credentials come only from here: nothing in a request chooses a host.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chalicelib.errors import RegistryError
from chalicelib.naming import check_name

DEFAULT_TTL_SECONDS = 300
DEFAULT_STATS_SECONDS = 60
# Docker Hub is named in several ways; its API answers at the first. A one-component name
# there is an official image (`alpine` is `library/alpine`), as docker itself maps it.
DOCKER_HUB_HOSTS = ("registry-1.docker.io", "docker.io", "index.docker.io", "registry.hub.docker.com")
DOCKER_HUB_API = "https://registry-1.docker.io"
OFFICIAL_IMAGES = "library/"
_RULE_KEYS = {"url", "ttl_seconds", "expire_after_days", "single_names", "credentials"}
_CREDENTIAL_SOURCES = ("secret", "env", "file")


class RulesError(ValueError):
    """The upstreams document is malformed; the message says where."""


@dataclass(frozen=True)
class CredentialSource:
    """Where a rule's upstream credentials are: a Secrets Manager secret (ARN or name), an
    environment variable, or a file. Read when first needed, never logged."""

    kind: str  # secret | env | file
    name: str


@dataclass(frozen=True)
class Rule:
    prefix: str  # "" or lowercase path components ending in "/"
    url: str  # scheme://host[:port], no path
    ttl_seconds: int = DEFAULT_TTL_SECONDS  # a cached tag is served without asking upstream this long
    expire_after_days: float | None = None  # cached content not pulled this long is removed; None: kept
    single_names: str = ""  # prepended upstream to a one-component name (Docker Hub: "library/")
    credentials: CredentialSource | None = None  # None: anonymous

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def origin(self) -> tuple[str, str]:
        parts = urlsplit(self.url)
        return parts.scheme, parts.netloc.lower()

    def upstream_name(self, name: str) -> str:
        """The repository upstream for a name under this rule's prefix."""
        rest = name[len(self.prefix):]
        return self.single_names + rest if "/" not in rest else rest

    @property
    def on_private_network(self) -> bool:
        """An upstream at a loopback or private address (a test, or a registry in the VPC): only
        then may the copier follow its redirects to such addresses."""
        import ipaddress  # here, not at cold start: only the copier asks

        host = urlsplit(self.url).hostname or ""
        if host == "localhost":
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return address.is_loopback or address.is_private


@dataclass(frozen=True)
class CacheConfig:
    """The rules, and where the copy jobs go."""

    rules: tuple[Rule, ...] = ()
    own: tuple[str, ...] = ()  # prefixes mapped to null: the registry's own repositories
    copy_queue: str = "berth-cache"  # SQS queue the blob copier reads (name, for the trigger)
    copy_queue_url: str | None = None
    stats_seconds: int = DEFAULT_STATS_SECONDS  # counters are written at most this often per container

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    def rule_for(self, name: str) -> Rule | None:
        """The rule of the longest prefix `name` starts with; None when that prefix is the
        registry's own, or none matches."""
        best: Rule | None = None
        best_length = -1
        for rule in self.rules:
            if name.startswith(rule.prefix) and len(rule.prefix) > best_length:
                best, best_length = rule, len(rule.prefix)
        if any(name.startswith(prefix) and len(prefix) > best_length for prefix in self.own):
            return None
        return best

    def rule_by_prefix(self, prefix: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.prefix == prefix), None)

    @property
    def longest_expiry_days(self) -> float | None:
        """Blobs are shared by every rule, so they go by the most patient one; None when some
        rule keeps its content for ever."""
        days = [rule.expire_after_days for rule in self.rules]
        return None if not days or None in days else max(d for d in days if d is not None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CacheConfig:
        """`BERTH_UPSTREAMS` holds the document, or names a file that does."""
        text = (environ.get("BERTH_UPSTREAMS") or "").strip()
        if text and not text.startswith("{"):
            try:
                with open(text, encoding="utf-8") as file:
                    text = file.read()
            except OSError as err:
                raise RulesError(f"BERTH_UPSTREAMS names a file that cannot be read: {err}") from None
        rules, own = parse_rules(text) if text else ((), ())
        try:
            stats_seconds = int(environ.get("BERTH_CACHE_STATS_SECONDS") or DEFAULT_STATS_SECONDS)
        except ValueError:
            raise RulesError("BERTH_CACHE_STATS_SECONDS must be a whole number of seconds") from None
        return cls(rules, own, environ.get("BERTH_CACHE_QUEUE") or "berth-cache",
                   environ.get("BERTH_CACHE_QUEUE_URL") or None, max(stats_seconds, 0))


def parse_rules(text: str) -> tuple[tuple[Rule, ...], tuple[str, ...]]:
    try:
        document = json.loads(text)
    except ValueError as err:
        raise RulesError(f"BERTH_UPSTREAMS is not JSON: {err}") from None
    if not isinstance(document, dict):
        raise RulesError('BERTH_UPSTREAMS must map prefixes to upstreams: {"hub/": {"url": "https://..."}}')
    rules, own = [], []
    for prefix, entry in document.items():
        _check_prefix(prefix)
        if entry is None:
            own.append(prefix)
        else:
            rules.append(_rule(prefix, entry))
    return tuple(rules), tuple(own)


def _check_prefix(prefix: str) -> None:
    if prefix == "":
        return
    if not prefix.endswith("/"):
        raise RulesError(f"prefix {prefix!r} must end with '/' (or be \"\" for every other name)")
    try:
        check_name(prefix[:-1])
    except RegistryError:
        raise RulesError(f"prefix {prefix!r} is not made of repository name components") from None


def _rule(prefix: str, entry: Any) -> Rule:
    where = f"BERTH_UPSTREAMS[{prefix!r}]"
    if not isinstance(entry, dict):
        raise RulesError(f"{where} must be an object with a url, or null")
    unknown = set(entry) - _RULE_KEYS
    if unknown:
        raise RulesError(f"{where} has unknown keys {sorted(unknown)}; known: {sorted(_RULE_KEYS)}")
    url = _url(entry.get("url"), where)
    docker_hub = urlsplit(url).hostname in DOCKER_HUB_HOSTS
    if docker_hub:
        url = DOCKER_HUB_API
    ttl = entry.get("ttl_seconds", DEFAULT_TTL_SECONDS)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
        raise RulesError(f"{where}.ttl_seconds must be a whole number of seconds, at least 0")
    expire = entry.get("expire_after_days")
    if expire is not None and (isinstance(expire, bool) or not isinstance(expire, int | float) or expire <= 0):
        raise RulesError(f"{where}.expire_after_days must be a number of days above 0")
    single = entry.get("single_names", OFFICIAL_IMAGES if docker_hub else "")
    if not isinstance(single, str) or (single and not single.endswith("/")):
        raise RulesError(f"{where}.single_names must be a prefix ending in '/' (or \"\")")
    return Rule(prefix, url, ttl, None if expire is None else float(expire), single,
                _credentials(entry.get("credentials"), where))


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RulesError(f"{where}.url must be the upstream's URL, e.g. https://ghcr.io")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RulesError(f"{where}.url must be http(s)://HOST[:PORT], not {value!r}")
    if parts.path.strip("/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise RulesError(f"{where}.url must be the registry's root: no path, query or credentials "
                         "(credentials go in \"credentials\")")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise RulesError(f"{where}.url has a malformed port") from None
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _credentials(value: Any, where: str) -> CredentialSource | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in _CREDENTIAL_SOURCES:
        raise RulesError(f'{where}.credentials must be one of {{"secret": ARN or name}}, {{"env": VARIABLE}}, '
                         '{"file": PATH}')
    kind, name = next(iter(value.items()))
    if not isinstance(name, str) or not name:
        raise RulesError(f"{where}.credentials.{kind} must be a non-empty string")
    return CredentialSource(kind, name)


@dataclass(frozen=True)
class UpstreamCredentials:
    """A user name and password (or access token) for an upstream. Kept out of `repr`."""

    username: str
    password: str = field(repr=False)


def parse_credentials(text: str) -> UpstreamCredentials:
    """`{"username": ..., "password": ...}` (ECR's `accessToken` also names the password), or
    `user:password`. Errors never quote the text."""
    text = text.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            raise RulesError("upstream credentials are not valid JSON") from None
        password = doc.get("password", doc.get("accessToken")) if isinstance(doc, dict) else None
        username = doc.get("username") if isinstance(doc, dict) else None
        if not isinstance(username, str) or not username or not isinstance(password, str):
            raise RulesError('upstream credentials must be {"username": ..., "password": ...}')
        return UpstreamCredentials(username, password)
    username, colon, password = text.partition(":")
    if not colon or not username:
        raise RulesError("upstream credentials must be USER:PASSWORD or a JSON object")
    return UpstreamCredentials(username, password)


def environ_credentials(source: CredentialSource, environ: Mapping[str, str] = os.environ) -> str:
    """The text of an `env` or `file` credential source (a `secret` is read by the caller)."""
    if source.kind == "env":
        value = environ.get(source.name)
        if value is None:
            raise RulesError(f"the environment variable {source.name} holding upstream credentials is not set")
        return value
    try:
        with open(source.name, encoding="utf-8") as file:
            return file.read()
    except OSError as err:
        raise RulesError(f"the upstream credentials file cannot be read: {err.strerror}") from None
