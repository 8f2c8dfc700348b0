"""Upstream credentials, read where each rule says (Secrets Manager deployed; the environment
or a file locally) when first needed, and kept a few minutes so a rotated secret is picked up
without a redeploy. Their text never reaches a log or an error message."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from chalicelib.cache.rules import (
    CredentialSource,
    RulesError,
    UpstreamCredentials,
    environ_credentials,
    parse_credentials,
)
from chalicelib.cache.upstream import Unavailable
from chalicelib.storage.clients import AwsClients

log = logging.getLogger("berth.cache")
KEEP_SECONDS = 300


class Credentials:
    def __init__(self, aws: AwsClients, clock: Callable[[], float] = time.monotonic) -> None:
        self._aws = aws
        self._clock = clock
        self._lock = threading.Lock()
        self._read: dict[CredentialSource, tuple[float, UpstreamCredentials]] = {}

    def provider(self, source: CredentialSource | None) -> Callable[[], UpstreamCredentials | None]:
        return (lambda: None) if source is None else (lambda: self.get(source))

    def get(self, source: CredentialSource) -> UpstreamCredentials:
        with self._lock:
            kept = self._read.get(source)
        if kept is not None and kept[0] > self._clock():
            return kept[1]
        try:
            credentials = parse_credentials(self._text(source))
        except RulesError as err:
            # Says which source and what is wrong with it, never what it holds.
            log.error("upstream credentials from %s %s: %s", source.kind, source.name, err)
            raise Unavailable("the credentials configured for this upstream cannot be read") from None
        with self._lock:
            self._read[source] = (self._clock() + KEEP_SECONDS, credentials)
        return credentials

    def _text(self, source: CredentialSource) -> str:
        if source.kind != "secret":
            return environ_credentials(source)
        client = self._aws.secretsmanager
        try:
            return str(client.get_secret_value(SecretId=source.name)["SecretString"])
        except KeyError:
            raise RulesError("the secret holds no SecretString") from None
        except client.exceptions.ClientError as err:
            raise RulesError(f"Secrets Manager answered {err.response.get('Error', {}).get('Code')}") from None
