"""One function per page: check what the visitor may see or do, read, render."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from chalice import Response

from chalicelib.api.request import RegistryRequest
from chalicelib.api.responses import empty
from chalicelib.auth.authenticator import BadCredentials
from chalicelib.digest.digests import looks_like_digest
from chalicelib.errors import RegistryError
from chalicelib.events import events_for
from chalicelib.lifecycle.jobs import Housekeeping
from chalicelib.naming import MAX_NAME_LENGTH, check_name, valid_tag
from chalicelib.ui import pages
from chalicelib.ui.assets import ASSETS
from chalicelib.ui.browse import ManifestPage
from chalicelib.ui.context import Context, PageError, not_found, page, redirect
from chalicelib.ui.session import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    clear_cookie,
    local_path,
    set_cookie,
)
from chalicelib.ui.visitor import log_in, signer

log = logging.getLogger("berth.ui")

REPOSITORIES_PER_PAGE = 25
TAGS_PER_PAGE = 50
MAX_USER = 256
MAX_PASSWORD = 1024
SWITCHED_OFF = "Deleting is switched off on this registry (BERTH_DELETE_MANIFESTS=false)."


# ---- what the visitor may see --------------------------------------------------------------

def visible(ctx: Context, name: str) -> str:
    """A repository name the visitor may pull; anything else is not found, whether it exists
    or not."""
    try:
        check_name(name)
    except RegistryError:
        raise not_found() from None
    if not ctx.visitor.may_pull(name):
        raise not_found()
    return name


def _reference(text: str) -> str | None:
    if looks_like_digest(text):
        return text if len(text) <= 200 else None
    return text if valid_tag(text) else None


def _offset(text: str) -> int:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else 0


# ---- repositories --------------------------------------------------------------------------

def repositories(ctx: Context) -> Response:
    search = ctx.arg("q").strip().lower()[:MAX_NAME_LENGTH]
    after = ctx.arg("after")
    try:
        after = check_name(after) if after else ""
    except RegistryError:
        after = ""
    names, more = ctx.browser.repository_names(ctx.visitor.may_pull, search, after or None, REPOSITORIES_PER_PAGE)
    summaries = ctx.browser.summaries(names)
    return page(pages.repositories(ctx.chrome, summaries, search, after or None, names[-1] if more else None,
                                   ctx.host))


def repository(ctx: Context) -> Response:
    name = visible(ctx, ctx.params["name"])
    start = _offset(ctx.arg("start"))
    with_untagged = ctx.arg("untagged") == "1"
    found = ctx.browser.repository(name, start, TAGS_PER_PAGE, with_untagged)
    if found is None:
        raise not_found()
    deleted = _reference(ctx.arg("deleted"))
    notice = None
    if deleted and deleted not in found.references:  # a link cannot claim a delete that did not happen
        notice = f"Deleted {name}{'@' if looks_like_digest(deleted) else ':'}{deleted}."
    policy = ctx.registry.settings.lifecycle.policy_for(name)
    return page(pages.repository(ctx.chrome, found, start, TAGS_PER_PAGE, with_untagged,
                                 lambda tag: bool(policy and policy.tag_is_immutable(tag)), notice))


def manifest(ctx: Context) -> Response:
    name = visible(ctx, ctx.params["name"])
    reference = _reference(ctx.params["reference"])
    found = ctx.browser.manifest(name, reference) if reference else None
    if found is None:
        raise not_found()
    immutable = _immutable_tags(ctx, found)
    commands = pages.pull_commands(ctx.host, not ctx.secure, name, found.tag or found.record.digest)
    return page(pages.manifest(ctx.chrome, found, commands, _actions(ctx, found, immutable), immutable))


def _immutable_tags(ctx: Context, found: ManifestPage) -> list[str]:
    policy = ctx.registry.settings.lifecycle.policy_for(found.name)
    return [t for t in found.tags if policy and policy.tag_is_immutable(t)]


def _actions(ctx: Context, found: ManifestPage, immutable: list[str]) -> pages.Actions:
    if not ctx.visitor.may_delete(found.name):
        return pages.Actions(False, False, None)
    if not ctx.registry.settings.lifecycle.delete_manifests:
        return pages.Actions(False, False, SWITCHED_OFF)
    reason = None
    if immutable:
        reason = (f"Immutable in this repository: {', '.join(immutable)}. These pages do not delete an immutable "
                  "tag, nor a manifest one names.")
    return pages.Actions(found.tag is not None and found.tag not in immutable, not immutable, reason)


def _refusal(ctx: Context, found: ManifestPage, tag: str | None, immutable: list[str]) -> str | None:
    """Why this delete may not happen (the delete switch, immutable tags), or None."""
    if not ctx.registry.settings.lifecycle.delete_manifests:
        return SWITCHED_OFF
    if tag is not None and tag in immutable:
        return f"Tag {tag} is immutable in this repository: these pages do not delete it."
    if tag is None and immutable:
        return (f"Immutable tags name this manifest ({', '.join(immutable)}): these pages do not delete it, "
                "nor the tags with it.")
    return None


# ---- delete ---------------------------------------------------------------------------------

def _plan(ctx: Context, repo: str, reference: str) -> pages.DeletePlan:
    name = visible(ctx, repo)
    ref = _reference(reference)
    found = ctx.browser.manifest(name, ref) if ref else None
    if found is None or ref is None:
        raise not_found()
    if not ctx.visitor.may_delete(name):
        raise PageError(403, "Not allowed", f"You may not delete in {name}.")
    immutable = _immutable_tags(ctx, found)
    refusal = _refusal(ctx, found, found.tag, immutable)
    if refusal:
        raise PageError(403, "Not deleted", refusal)
    digest = found.record.digest
    return pages.DeletePlan(name, ref, found.tag, digest, found.tags if found.tag is None else [], found.indexes,
                            len(found.referrers))


def confirm_delete(ctx: Context) -> Response:
    return page(pages.confirm_delete(ctx.chrome, _plan(ctx, ctx.arg("repo"), ctx.arg("ref"))))


def delete(ctx: Context) -> Response:
    plan = _plan(ctx, ctx.form.get("repo", ""), ctx.form.get("ref", ""))
    try:
        ctx.registry.manifests.delete(plan.repo, plan.reference)
    except RegistryError:
        raise PageError(404, "Already gone", "Someone deleted it first.") from None
    log.info("deleted %s %s through the web pages (user %r)", plan.repo, plan.reference, ctx.visitor.name)
    _publish_delete(ctx, plan)
    return redirect(pages.url(pages.repo_url(plan.repo), deleted=plan.reference))


def _publish_delete(ctx: Context, plan: pages.DeletePlan) -> None:
    """The event a DELETE through the API would send (docs/events.md), with this request's id."""
    events = ctx.registry.events
    if events is None:
        return
    req = ctx.req
    as_api = RegistryRequest(req.method, req.path, req.query, req.headers, b"",
                             {"name": plan.repo, "reference": plan.reference}, ctx.visitor.principal, req.request_id)
    events.publish(events_for("manifests.delete", as_api, empty(202), ctx.base))


# ---- storage --------------------------------------------------------------------------------

def storage(ctx: Context) -> Response:
    if not ctx.visitor.sees_everything:
        raise PageError(403, "Not allowed", "Storage totals count every repository: they are shown to those who "
                                            "may pull every repository.")
    registry = ctx.registry
    housekeeping = Housekeeping.build(registry.settings, registry.clients)
    stats = housekeeping.stats()
    collection: dict[str, Any] | None = None
    if ctx.arg("collect") == "1":
        collection = asdict(housekeeping.collector().dry_run())
    return page(pages.storage(ctx.chrome, stats, collection, registry.settings.lifecycle.gc_grace_hours))


# ---- login and logout -----------------------------------------------------------------------

def login_form(ctx: Context) -> Response:
    target = local_path(ctx.arg("next"), pages.HOME)
    if ctx.registry.settings.auth_mode == "none" or ctx.visitor.session is not None:
        return redirect(target)
    return page(pages.login(ctx.visitor.csrf, target))


def login(ctx: Context) -> Response:
    target = local_path(ctx.form.get("next"), pages.HOME)
    if ctx.registry.settings.auth_mode == "none":
        return redirect(target)
    user, password = ctx.form.get("user", "").strip(), ctx.form.get("password", "")
    if not user or not password or len(user) > MAX_USER or len(password) > MAX_PASSWORD:
        return page(pages.login(ctx.visitor.csrf, target, user[:MAX_USER], "Give a user name and a password."), 400)
    try:
        credential = log_in(ctx.registry, user, password, ctx.req.source)
    except BadCredentials:
        return page(pages.login(ctx.visitor.csrf, target, user, "Wrong user name, password or token."), 401)
    except RegistryError as refused:
        return page(pages.login(ctx.visitor.csrf, target, user, refused.message), refused.kind.status)
    token, _ = signer(ctx.registry).issue(user, credential, int(ctx.now))
    response = redirect(target)
    response.headers["Set-Cookie"] = set_cookie(SESSION_COOKIE, token, SESSION_SECONDS, ctx.secure)
    return response


def logout(ctx: Context) -> Response:
    response = redirect(pages.url(pages.HOME + "login"))
    response.headers["Set-Cookie"] = [clear_cookie(SESSION_COOKIE, ctx.secure), clear_cookie(CSRF_COOKIE, ctx.secure)]
    return response


# ---- assets ---------------------------------------------------------------------------------

def asset(ctx: Context) -> Response:
    found = ASSETS.get(ctx.params["asset"])
    if found is None:
        raise PageError(404, "Not found", "No such file.")
    return Response(body=found.body, status_code=200, headers={
        "Content-Type": found.content_type, "Cache-Control": "public, max-age=31536000, immutable"})
