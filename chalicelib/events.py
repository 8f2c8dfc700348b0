"""Registry events on Amazon EventBridge (docs/events.md): what the reference registry's
notifications tell (push, delete, pull), as EventBridge events any rule can route.

Derived from a finished request alone (its route, status, parameters and headers), so the
services know nothing of them: the dispatcher hands every successful request here. Off unless
BERTH_EVENT_BUS names a bus. A request yields at most two events, sent in one PutEvents call;
a failure to publish is logged and never fails the request (what it reports has happened).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from chalice import Response

from chalicelib.api.request import RegistryRequest
from chalicelib.digest.digests import looks_like_digest
from chalicelib.settings import Settings
from chalicelib.storage.clients import AwsClients

log = logging.getLogger("berth.events")
SOURCE = "berth.registry"
CHECKED = "Registry Checked"  # the one event not derived from a request: `berth doctor`'s test


@dataclass(frozen=True)
class RegistryEvent:
    detail_type: str  # "Manifest Pushed", ...
    action: str  # push | tag | delete | pull: what BERTH_EVENTS selects
    detail: dict[str, Any]


def events_for(operation: str, req: RegistryRequest, response: Response, registry_url: str) -> list[RegistryEvent]:
    """The events a finished request stands for; none for anything that did not change or
    serve a manifest (errors, uploads, HEADs, listings)."""
    status, headers = response.status_code, {k.lower(): str(v) for k, v in response.headers.items()}
    name, reference = req.params.get("name", ""), req.params.get("reference", "")
    tag = None if looks_like_digest(reference) else reference or None
    base: dict[str, Any] = {
        "repository": name, "actor": req.principal.name or None,  # no actor when auth is off
        "registry": registry_url,
        "request": {"id": req.request_id, "method": req.method, "userAgent": req.header("user-agent")},
    }

    def event(detail_type: str, action: str, target: str, **fields: Any) -> RegistryEvent:
        detail = {"action": action, "target": target, **base, **fields}
        return RegistryEvent(detail_type, action, {k: v for k, v in detail.items() if v is not None})

    if operation == "manifests.put" and status == 201:
        digest = headers.get("docker-content-digest")
        pushed = event("Manifest Pushed", "push", "manifest", digest=digest, tag=tag,
                       mediaType=req.header("content-type"), size=len(req.body))
        return [pushed, event("Tag Pushed", "tag", "tag", tag=tag, digest=digest)] if tag else [pushed]
    if operation == "manifests.delete" and status == 202:
        if tag:
            return [event("Tag Deleted", "delete", "tag", tag=tag)]
        return [event("Manifest Deleted", "delete", "manifest", digest=reference)]
    if operation == "blobs.delete" and status == 202:
        return [event("Blob Deleted", "delete", "blob", digest=req.params.get("digest"))]
    if operation == "manifests.get" and status == 200:
        return [event("Manifest Pulled", "pull", "manifest", digest=headers.get("docker-content-digest"), tag=tag,
                      mediaType=headers.get("content-type"), size=int(headers.get("content-length", 0)) or None)]
    return []


class EventPublisher:
    def __init__(self, clients: AwsClients, bus: str, actions: frozenset[str]) -> None:
        self._clients = clients
        self.bus = bus  # a name or an ARN, as PutEvents takes it
        self.actions = actions

    @classmethod
    def build(cls, clients: AwsClients, settings: Settings) -> EventPublisher | None:
        return cls(clients, settings.event_bus, settings.event_actions) if settings.event_bus else None

    def check(self, registry_url: str | None) -> str | None:
        """Send one `Registry Checked` event; None when EventBridge took it, else why not (an
        error code, never the message, which may name the account)."""
        detail = {"action": "check", "registry": registry_url} if registry_url else {"action": "check"}
        entry = {"Source": SOURCE, "DetailType": CHECKED, "EventBusName": self.bus, "Detail": json.dumps(detail)}
        try:
            result = self._clients.events.put_events(Entries=[entry])
        except Exception as error:
            log.exception("could not send a test event to %s", self.bus)
            return str(getattr(error, "response", {}).get("Error", {}).get("Code") or type(error).__name__)
        failed = [e.get("ErrorCode") for e in result.get("Entries", []) if e.get("ErrorCode")]
        return str(failed[0]) if failed else None

    def publish(self, events: list[RegistryEvent]) -> None:
        entries = [{"Source": SOURCE, "DetailType": e.detail_type, "Detail": json.dumps(e.detail),
                    "EventBusName": self.bus} for e in events if e.action in self.actions]
        if not entries:
            return
        try:
            result = self._clients.events.put_events(Entries=entries)
        except Exception:
            log.exception("could not publish %d registry events to %s", len(entries), self.bus)
            return
        if result.get("FailedEntryCount"):
            failed = [e.get("ErrorCode") for e in result.get("Entries", []) if e.get("ErrorCode")]
            log.error("EventBridge refused %d of %d registry events: %s", len(failed), len(entries), failed)
