"""Berth's Lambda entry point: wiring only. Every `/v2/` and `/token` request goes to one
dispatcher; with auth on, an authorizer stands in front of `/v2` (chalicelib/api/authorizer.py).
The web pages under `/ui/` have a dispatcher of their own (chalicelib/ui/)."""

from dataclasses import asdict
from typing import Any

from chalice import Chalice, Rate
from chalice.app import AuthRequest, CloudWatchEvent, SQSEvent

from chalicelib import snapstart
from chalicelib.api import authorizer
from chalicelib.api.dispatch import handle
from chalicelib.api.request import RegistryRequest
from chalicelib.api.routes import METHODS
from chalicelib.lifecycle.jobs import Housekeeping, time_left
from chalicelib.registry import Registry
from chalicelib.settings import Settings
from chalicelib.storage.heartbeats import Heartbeats
from chalicelib.telemetry import Telemetry
from chalicelib.ui import METHODS as PAGE_METHODS
from chalicelib.uploads.verify import uploads_in

app = Chalice(app_name="berth")
# What Chalice itself treats as binary. The deployed API declares every body binary
# (berth/deploy/api.py), so all reach Lambda byte for byte; responses are never binary
# (chalicelib/api/responses.py).
app.api.binary_types = ["application/octet-stream"]

registry = Registry.build(Settings.from_env())
telemetry = Telemetry()
# With SnapStart (docs/deploy.md): clients built into the snapshot, renewed after each restore.
snapstart.register(registry)


# Never cached: each request is decided exactly, so changes to accounts hold at once and every
# refusal is a gateway response with its challenge (chalicelib/api/authorizer.py).
@app.authorizer(ttl_seconds=0)
def credentials(auth_request: AuthRequest) -> dict[str, Any]:
    source = auth_request.source if isinstance(auth_request, authorizer.GatewayRequest) else ""
    return authorizer.policy(registry.auth, auth_request.token, auth_request.method_arn, source)


# A REQUEST authorizer (berth/deploy/api.py declares it so): its events carry the headers and
# the caller's address, which Chalice's reading of an authorizer event (a TOKEN one) leaves out.
credentials._transform_event = authorizer.GatewayRequest


def _request() -> RegistryRequest:
    request = app.current_request
    assert request is not None
    body = request.raw_body
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return RegistryRequest.from_event(request.to_original_event(), raw)


def _dispatch() -> object:
    return handle(_request(), registry, telemetry)


@app.middleware("http")
def flush_metrics(event: Any, get_response: Any) -> Any:
    try:
        return get_response(event)
    finally:
        telemetry.flush()


_guard = credentials if registry.settings.auth_mode != "none" else None


@app.route("/token", methods=["GET", "POST"], content_types=["*/*"])
def token() -> object:
    return _dispatch()


@app.route("/v2", methods=METHODS, content_types=["*/*"], authorizer=_guard)
@app.route("/v2/{proxy+}", methods=METHODS, content_types=["*/*"], authorizer=_guard)
def registry_api() -> object:
    return _dispatch()


# Never behind the authorizer: the pages log people in themselves (a session cookie), and a
# browser must get the login form, not a registry's challenge.
@app.route("/ui", methods=PAGE_METHODS, content_types=["*/*"])
@app.route("/ui/{proxy+}", methods=PAGE_METHODS, content_types=["*/*"])
def web_pages() -> object:
    from chalicelib.ui import dispatch  # on the first page: registry requests never load the pages

    return dispatch.handle(_request(), registry, telemetry)


# Storage lifecycle (docs/lifecycle.md): each is a Lambda of its own, with its own clients.
housekeeping = Housekeeping.build(registry.settings)


# Each run is recorded in the jobs' table, so `berth doctor` can tell the schedules fire.
@app.schedule(Rate(1, unit=Rate.HOURS))
def purge_uploads(event: CloudWatchEvent) -> dict[str, Any]:
    with Heartbeats.beside(housekeeping.store).run("purge_uploads"):
        return housekeeping.scheduled_purge(time_left(event.context))


@app.schedule(Rate(1, unit=Rate.HOURS))
def collect_garbage(event: CloudWatchEvent) -> dict[str, Any]:
    with Heartbeats.beside(housekeeping.store).run("collect_garbage"):
        return housekeeping.scheduled_collection(time_left(event.context))


# Direct uploads (docs/direct-upload.md): S3 reports each completed object to this queue.
@app.on_sqs_message(queue=registry.settings.verify_queue, batch_size=1)
def verify_blob(event: SQSEvent) -> None:
    should_stop = time_left(event.context)
    for record in event:
        for uuid in uploads_in(record.body):
            registry.verifier.run(uuid, should_stop)


# The pull-through cache (docs/cache.md): blobs pulled through it are copied into S3 off the
# request path; content not pulled for a rule's expiry is evicted.
@app.on_sqs_message(queue=registry.settings.cache.copy_queue, batch_size=1)
def copy_blob(event: SQSEvent) -> None:
    from chalicelib.cache.copier import copies_in

    should_stop = time_left(event.context)
    for record in event:
        for digest in copies_in(record.body):
            if registry.cache is not None:
                registry.cache.copier.run(digest, should_stop)


@app.schedule(Rate(1, unit=Rate.HOURS))
def collect_cache(event: CloudWatchEvent) -> dict[str, Any]:
    if registry.cache is None or not registry.cache.eviction.due():
        return {"status": "not due"}
    return asdict(registry.cache.eviction.run(time_left(event.context)))
