"""The pages, as small templates (chalicelib/ui/markup.py escapes every value). Pure logic:
each function takes what a view read and returns the page's HTML."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from chalicelib.lifecycle.stats import Stats
from chalicelib.ui.assets import CSS, JS
from chalicelib.ui.browse import ManifestPage, ManifestSummary, RepositoryPage, RepositorySummary
from chalicelib.ui.markup import Markup, escape, join, render, url
from chalicelib.ui.model import ConfigView, Descriptor, group_referrers, human_size, short_digest
from chalicelib.ui.model import age as words_for_age

HOME = "/ui/"
# Rows of one table on one page: a manifest may list thousands of layers, an image thousands of
# history steps; the page must stay far below the 6 MB a Lambda can answer.
MAX_ROWS = 500
RAW_MANIFEST_SHOWN = 256 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class Chrome:
    """What every page's header needs to know about the visitor."""

    user: str | None  # None with auth off
    csrf: str
    storage: bool  # may see the storage page
    now: float


@dataclass(frozen=True)
class PullCommand:
    tool: str
    text: str


NOTHING = Markup("")


def layout(chrome: Chrome | None, title: str, content: Markup, crumbs: Sequence[tuple[str, str | None]] = (),
           extra_head: Markup = NOTHING) -> str:
    """A whole page. `chrome` None: the login and error pages before anyone is known."""
    nav = Markup("")
    if chrome is not None:
        links = [render('<a href="$href">Repositories</a>', href=HOME)]
        if chrome.storage:
            links.append(render('<a href="$href">Storage</a>', href=url(HOME + "storage")))
        if chrome.user is None:
            links.append(render('<span class="who">Auth is off: everyone may do everything</span>'))
        else:
            links.append(render(
                '<span class="who">Signed in as <strong>$user</strong></span>'
                '<form method="post" action="$action"><input type="hidden" name="csrf" value="$csrf">'
                '<button class="plain" type="submit">Log out</button></form>',
                user=chrome.user, action=url(HOME + "logout"), csrf=chrome.csrf))
        nav = join(links)
    trail = Markup("")
    if crumbs:
        items = [render('<li><a href="$href">$text</a></li>', href=href, text=text) if href else
                 render('<li aria-current="page">$text</li>', text=text) for text, href in crumbs]
        trail = render('<nav aria-label="Breadcrumb"><ol class="crumbs">$items</ol></nav>', items=join(items))
    return render(
        """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>$title · Berth</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="$css">
<script src="$js" defer></script>
$extra_head</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top"><nav aria-label="Main"><a class="brand" href="$home">Berth</a>$nav</nav></header>
<main id="main" tabindex="-1">
$trail<h1>$title</h1>
$content
</main>
</body>
</html>
""", title=title, css=url(HOME + "static/" + CSS.name), js=url(HOME + "static/" + JS.name), home=HOME, nav=nav,
        trail=trail, content=content, extra_head=extra_head)


# ---- small parts ---------------------------------------------------------------------------

def _table(caption: str, headings: Sequence[str], rows: Iterable[Markup], numeric: Sequence[int] = ()) -> Markup:
    heads = join(render('<th scope="col"$cls>$text</th>', text=h, cls=Markup(' class="num"') if i in numeric else "")
                 for i, h in enumerate(headings))
    return render('<div class="scroll"><table><caption>$caption</caption><thead><tr>$heads</tr></thead>'
                  '<tbody>$rows</tbody></table></div>', caption=caption, heads=heads, rows=join(rows))


def _row(*cells: Any, numeric: Sequence[int] = ()) -> Markup:
    return render("<tr>$cells</tr>", cells=join(
        render("<td$cls>$cell</td>", cell=cell, cls=Markup(' class="num"') if i in numeric else "")
        for i, cell in enumerate(cells)))


def _capped(items: Sequence[T], what: str) -> tuple[Sequence[T], Markup]:
    if len(items) <= MAX_ROWS:
        return items, Markup("")
    return items[:MAX_ROWS], render('<p class="muted">$more more $what not shown.</p>', more=len(items) - MAX_ROWS,
                                    what=what)


def _size(size: int) -> Markup:
    return render('<span title="$exact bytes">$human</span>', exact=f"{size:,}", human=human_size(size))


def _when(epoch: float | None, now: float) -> Markup:
    if not epoch:
        return Markup('<span class="muted">unknown</span>')
    moment = datetime.fromtimestamp(epoch, UTC)
    return render('<time datetime="$iso" title="$full">$words</time>', iso=moment.isoformat(),
                  full=moment.strftime("%Y-%m-%d %H:%M:%S UTC"), words=words_for_age(now - epoch))


def _timestamp(text: str | None, now: float) -> Markup:
    """An RFC 3339 time from a config (`created`)."""
    if not text:
        return Markup('<span class="muted">unknown</span>')
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return escape(text)
    return _when(moment.timestamp(), now) if moment.tzinfo else escape(text)


def repo_url(name: str) -> str:
    return url(f"{HOME}r/{name}")


def reference_url(name: str, reference: str) -> str:
    separator = "@" if ":" in reference else ":"
    return url(f"{HOME}r/{name}{separator}{reference}")


def _digest_link(name: str, digest: str) -> Markup:
    return render('<a href="$href"><code title="$digest">$short</code></a>', href=reference_url(name, digest),
                  digest=digest, short=short_digest(digest))


def _platforms(summary: ManifestSummary) -> Markup:
    if summary.platforms:
        return join((render('<span class="badge">$p</span>', p=p) for p in summary.platforms), " ")
    kind = summary.view.kind
    if kind:
        return render('<span class="muted">artifact: <code>$kind</code></span>', kind=kind)
    return Markup('<span class="muted">—</span>')


def _badges(summary: ManifestSummary, immutable: bool = False) -> Markup:
    badges = []
    if summary.view.is_index:
        badges.append(render('<span class="badge">index</span>'))
    if summary.referrers:
        badges.append(render('<span class="badge ok" title="referrers: signatures, SBOMs, attestations">'
                             '$n referrer$s</span>', n=summary.referrers, s="s" if summary.referrers != 1 else ""))
    if immutable:
        badges.append(render('<span class="badge warn">immutable</span>'))
    return join(badges, " ")


def _notice(text: str | None, error: bool = False) -> Markup:
    if not text:
        return Markup("")
    return render('<p class="notice$cls" role="$role">$text</p>', text=text, cls=" error" if error else "",
                  role="alert" if error else "status")


# ---- pages ---------------------------------------------------------------------------------

def login(csrf: str, target: str, user: str = "", error: str | None = None) -> str:
    content = render("""<div class="login">
$error<form method="post" action="$action">
<input type="hidden" name="csrf" value="$csrf">
<input type="hidden" name="next" value="$target">
<div class="field"><label for="user">User name</label>
<input id="user" name="user" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required
 autofocus value="$user"></div>
<div class="field"><label for="password">Password or CI token</label>
<input id="password" name="password" type="password" autocomplete="current-password" required></div>
<button type="submit">Log in</button>
</form>
<p class="muted">The accounts and CI tokens of <code>docker login</code>.</p>
</div>""", error=_notice(error, error=True), action=url(HOME + "login"), csrf=csrf, target=target, user=user)
    return layout(None, "Log in to Berth", content)


def repositories(chrome: Chrome, rows: list[RepositorySummary], search: str, after: str | None,
                 next_after: str | None, host: str) -> str:
    form = render("""<form class="search" method="get" action="$action" role="search">
<div><label for="q">Search repositories</label><input id="q" name="q" type="search" value="$q"></div>
<button type="submit">Search</button>
</form>""", action=HOME, q=search)
    if rows:
        body = _table(
            "Repositories you may pull" + (f", with names containing “{search}”" if search else ""),
            ("Repository", "Tags", "Size", "Last push"),
            (_row(render('<a href="$href">$name</a>', href=repo_url(r.name), name=r.name), r.tags, _size(r.size),
                  _when(r.last_push, chrome.now), numeric=(1, 2)) for r in rows), numeric=(1, 2))
    elif search:
        body = render('<p>No repository you may pull has “$q” in its name.</p>', q=search)
    else:
        body = render('<p>No repositories you may pull yet. Push one:</p><pre>docker push $host/team/app:1</pre>',
                      host=host)
    links = []
    if after:
        links.append(render('<a href="$href">First page</a>', href=url(HOME, q=search)))
    if next_after:
        links.append(render('<a href="$href" rel="next">Next page</a>', href=url(HOME, q=search, after=next_after)))
    pager = render('<nav class="pager" aria-label="Pages">$links</nav>', links=join(links)) if links else Markup("")
    return layout(chrome, "Repositories", join([form, body, pager]))


def repository(chrome: Chrome, page: RepositoryPage, start: int, count: int, with_untagged: bool,
               immutable: Callable[[str], bool], notice: str | None) -> str:
    name = page.name
    parts = [_notice(notice)]
    if page.tags:
        parts.append(_table(
            f"Tags, newest first ({start + 1}–{start + len(page.tags)} of {page.tag_total})",
            ("Tag", "Digest", "Size", "Platforms", "Pushed", ""),
            (_row(render('<a href="$href">$tag</a>', href=reference_url(name, t.name), tag=t.name),
                  _digest_link(name, t.manifest.digest), _size(t.manifest.size), _platforms(t.manifest),
                  _when(t.pushed, chrome.now), _badges(t.manifest, immutable(t.name)), numeric=(2,))
             for t in page.tags), numeric=(2,)))
    else:
        parts.append(render("<p>No tags.</p>"))
    links = []
    if start > 0:
        links.append(render('<a href="$href" rel="prev">Newer tags</a>',
                            href=url(repo_url(name), start=max(0, start - count) or None,
                                     untagged=1 if with_untagged else None)))
    if start + count < page.tag_total:
        links.append(render('<a href="$href" rel="next">Older tags</a>',
                            href=url(repo_url(name), start=start + count, untagged=1 if with_untagged else None)))
    if links:
        parts.append(render('<nav class="pager" aria-label="Tag pages">$links</nav>', links=join(links)))
    if with_untagged:
        parts.append(render("<h2>Untagged manifests</h2>"))
        if page.untagged:
            parts.append(_table(
                f"Manifests no tag names, newest first ({len(page.untagged)} of {page.untagged_total})",
                ("Digest", "What it is", "Size", "Platforms", "Pushed"),
                (_row(_digest_link(name, u.manifest.digest), _untagged_role(name, u.indexes, u.subject),
                      _size(u.manifest.size), _platforms(u.manifest), _when(u.manifest.pushed, chrome.now),
                      numeric=(2,)) for u in page.untagged), numeric=(2,)))
        else:
            parts.append(render("<p>None: every manifest has a tag.</p>"))
        parts.append(render('<p><a href="$href">Hide untagged manifests</a></p>', href=repo_url(name)))
    else:
        parts.append(render('<p><a href="$href">Show untagged manifests</a></p>',
                            href=url(repo_url(name), untagged=1)))
    return layout(chrome, name, join(parts), [("Repositories", HOME), (name, None)])


def _untagged_role(name: str, indexes: tuple[str, ...], subject: str | None) -> Markup:
    if subject:
        return render("refers to $link", link=_digest_link(name, subject))
    if indexes:
        return render("a platform of $links", links=join((_digest_link(name, d) for d in indexes), ", "))
    return Markup('<span class="muted">nothing points at it</span>')


def pull_commands(registry_host: str, plain_http: bool, name: str, reference: str) -> list[PullCommand]:
    """docker, podman and skopeo, pulling exactly this reference (flags for a plain-HTTP registry)."""
    separator = "@" if ":" in reference else ":"
    image = f"{registry_host}/{name}{separator}{reference}"
    local = name.rsplit("/", 1)[-1] + ("" if separator == "@" else f":{reference}")
    return [
        PullCommand("docker", f"docker pull {image}"),
        PullCommand("podman", f"podman pull {'--tls-verify=false ' if plain_http else ''}{image}"),
        PullCommand("skopeo", f"skopeo copy {'--src-tls-verify=false ' if plain_http else ''}docker://{image} "
                              f"oci:{local}"),
    ]


def _commands(commands: list[PullCommand]) -> Markup:
    rows = []
    for index, command in enumerate(commands):
        rows.append(render(
            '<div class="command"><span>$tool</span><pre id="cmd-$i">$text</pre>'
            '<button class="plain" type="button" hidden data-copy="cmd-$i" data-status="cmd-$i-status"'
            ' aria-label="Copy the $tool command">Copy</button>'
            '<span class="status" id="cmd-$i-status" role="status" aria-live="polite"></span></div>',
            tool=command.tool, i=index, text=command.text))
    return render('<h2>Pull</h2><div class="commands">$rows</div>', rows=join(rows))


@dataclass(frozen=True)
class Actions:
    """What the visitor may do to this manifest, and why not where they may not."""

    delete_tag: bool
    delete_manifest: bool
    reason: str | None  # why deletion is not offered


def manifest(chrome: Chrome, page: ManifestPage, commands: list[PullCommand], actions: Actions,
             immutable_tags: list[str]) -> str:
    name, view, record = page.name, page.view, page.record
    title = f"{name}:{page.tag}" if page.tag else f"{name}@{short_digest(record.digest)}"
    facts: list[tuple[str, Markup]] = [
        ("Digest", render("<code>$d</code>", d=record.digest)),
        ("Media type", render("<code>$m</code>", m=record.media_type)),
    ]
    if view.kind:
        facts.append(("Artifact type", render("<code>$k</code>", k=view.kind)))
    facts.append(("Size" if not view.is_index else "Size (every platform)", _size(page.size)))
    facts.append(("Manifest", _size(record.size)))
    facts.append(("Pushed", _when(record.created, chrome.now)))
    if page.config is not None and page.config.platform:
        facts.append(("Platform", render('<span class="badge">$p</span>', p=page.config.platform)))
    if page.tags:
        facts.append(("Tags", join((render('<a href="$href">$t</a>$badge', href=reference_url(name, t), t=t,
                                           badge=Markup(' <span class="badge warn">immutable</span>')
                                           if t in immutable_tags else "") for t in page.tags), ", ")))
    if view.subject:
        facts.append(("Refers to", _digest_link(name, view.subject)))
    if page.indexes:
        facts.append(("Listed by", join((_digest_link(name, d) for d in page.indexes), ", ")))
    parts = [render('<dl class="facts">$items</dl>', items=join(
        render("<dt>$k</dt><dd>$v</dd>", k=k, v=v) for k, v in facts)), _commands(commands)]
    if view.is_index:
        parts.append(_index(name, page))
    else:
        parts.append(_layers(name, view.layers, view.config))
        parts.append(_config(page.config, page.config_note, chrome.now))
    if view.annotations:
        parts.append(render("<h2>Annotations</h2>"))
        parts.append(_pairs("Annotations of the manifest", view.annotations))
    parts.append(_referrers(name, page.referrers))
    parts.append(_actions(name, record.digest, page.tag, actions))
    parts.append(_raw(page))
    crumbs = [("Repositories", HOME), (name, repo_url(name)), (page.tag or short_digest(record.digest), None)]
    return layout(chrome, title, join(parts), crumbs)


def _index(name: str, page: ManifestPage) -> Markup:
    rows, more = _capped(page.children, "manifests")
    table = _table("The manifests of this index", ("Platform", "Digest", "Size", "Media type"), (
        _row(render('<span class="badge">$p</span>', p=child.platform) if child.platform else
             render('<span class="muted">$what</span>', what=child.artifact_type or "not given"),
             _digest_link(name, child.digest) if summary else render("<code>$d</code> (not stored here)",
                                                                     d=short_digest(child.digest)),
             _size(summary.size) if summary else _size(child.size), render("<code>$m</code>", m=child.media_type),
             numeric=(2,))
        for child, summary in rows), numeric=(2,))
    return render("<h2>Platforms</h2>$table$more", table=table, more=more)


def _layers(name: str, layers: Sequence[Descriptor], config: Descriptor | None) -> Markup:
    shown, more = _capped(layers, "layers")
    rows = [_row(i + 1, render("<code title=\"$d\">$s</code>", d=layer.digest, s=short_digest(layer.digest)),
                 _size(layer.size), render("<code>$m</code>", m=layer.media_type), layer.title or "", numeric=(0, 2))
            for i, layer in enumerate(shown)]
    total = sum(layer.size for layer in layers)
    heading = render("<h2>Layers</h2>")
    if not layers:
        return join([heading, render("<p>None.</p>")])
    config_line = render('<p class="muted">Config: <code>$m</code>, $s.</p>', m=config.media_type,
                         s=_size(config.size)) if config else Markup("")
    caption = f"{len(layers)} layer{'s' if len(layers) != 1 else ''}, {human_size(total)} compressed"
    return join([heading, _table(caption, ("#", "Digest", "Size", "Media type", "Title"), rows, numeric=(0, 2)), more,
                 config_line])


def _command_line(words: tuple[str, ...] | None) -> Markup:
    if words is None:
        return Markup('<span class="muted">not set</span>')
    return render("<code>$c</code>", c=json.dumps(list(words)))


def _config(config: ConfigView | None, note: str | None, now: float) -> Markup:
    heading = render("<h2>Config</h2>")
    if config is None:
        return join([heading, render('<p class="muted">$note.</p>', note=(note or "no config").capitalize())])
    facts = [("Created", _timestamp(config.created, now)), ("Entrypoint", _command_line(config.entrypoint)),
             ("Cmd", _command_line(config.cmd))]
    for label, value in (("Author", config.author), ("Working directory", config.working_dir),
                         ("User", config.user)):
        if value:
            facts.append((label, render("<code>$v</code>", v=value)))
    if config.exposed_ports:
        facts.append(("Exposed ports", join((render("<code>$p</code>", p=p) for p in config.exposed_ports), ", ")))
    parts = [heading, render('<dl class="facts">$items</dl>', items=join(
        render("<dt>$k</dt><dd>$v</dd>", k=k, v=v) for k, v in facts))]
    env, more_env = _capped(config.env, "variables")
    parts.append(render("<h3>Environment</h3>"))
    parts.append(render("<pre>$lines</pre>$more", lines="\n".join(env), more=more_env) if env else
                 render('<p class="muted">None.</p>'))
    parts.append(render("<h3>Labels</h3>"))
    none = render('<p class="muted">None.</p>')
    parts.append(_pairs("Labels of the image", config.labels) if config.labels else none)
    parts.append(render("<h3>History</h3>"))
    steps, more_steps = _capped(config.history, "steps")
    if steps:
        parts.append(_table(f"{len(config.history)} build steps, oldest first", ("#", "Created", "Step", "Layer"), (
            _row(i + 1, _timestamp(step.created, now),
                 render("<code>$c</code>", c=step.created_by or step.comment or ""),
                 "none" if step.empty_layer else "yes", numeric=(0,))
            for i, step in enumerate(steps)), numeric=(0,)))
        parts.append(more_steps)
    else:
        parts.append(render('<p class="muted">None recorded.</p>'))
    return join(parts)


def _pairs(caption: str, pairs: dict[str, str]) -> Markup:
    items, more = _capped(sorted(pairs.items()), "entries")
    return join([_table(caption, ("Key", "Value"), (_row(render("<code>$k</code>", k=k), v) for k, v in items)),
                 more])


def _referrers(name: str, referrers: list[Descriptor]) -> Markup:
    heading = render("<h2>Referrers</h2>")
    if not referrers:
        return join([heading, render('<p class="muted">None: no signature, SBOM or attestation refers to it.</p>')])
    parts = [heading]
    for kind, group in group_referrers(referrers):
        shown, more = _capped(group, "referrers")
        parts.append(render("<h3>$kind ($n)</h3>", kind=kind, n=len(group)))
        rows = (_row(_digest_link(name, r.digest), render("<code>$t</code>", t=r.artifact_type or "not given"),
                     _size(r.size), join((render("<code>$k</code>: $v", k=k, v=v)
                                          for k, v in sorted(r.annotations.items())), "<br>"), numeric=(2,))
                for r in shown)
        parts.append(_table(f"{kind} that refer to this manifest", ("Digest", "Artifact type", "Size", "Annotations"),
                            rows, numeric=(2,)))
        parts.append(more)
    return join(parts)


def _actions(name: str, digest: str, tag: str | None, actions: Actions) -> Markup:
    buttons = []
    if actions.delete_tag and tag:
        buttons.append(render('<a class="button danger" href="$href">Delete tag $tag…</a>',
                              href=url(HOME + "delete", repo=name, ref=tag), tag=tag))
    if actions.delete_manifest:
        buttons.append(render('<a class="button danger" href="$href">Delete manifest…</a>',
                              href=url(HOME + "delete", repo=name, ref=digest)))
    reason = render('<p class="muted">$r</p>', r=actions.reason) if actions.reason else Markup("")
    if not buttons and not actions.reason:
        return Markup("")
    return render('<h2>Actions</h2><div class="actions">$buttons</div>$reason', buttons=join(buttons, " "),
                  reason=reason)


def _raw(page: ManifestPage) -> Markup:
    body = page.record.body
    if body is None or len(body) > RAW_MANIFEST_SHOWN:
        return Markup("")
    try:
        text = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return Markup("")
    return render("<h2>Manifest</h2><details><summary>The manifest as stored ($size)</summary><pre>$text</pre>"
                  "</details>", size=human_size(len(body)), text=text)


@dataclass(frozen=True)
class DeletePlan:
    repo: str
    reference: str
    tag: str | None
    digest: str
    also_tags: list[str]  # tags that go with the manifest
    indexes: list[str]  # indexes that list it
    referrers: int  # referrers left pointing at nothing


def confirm_delete(chrome: Chrome, plan: DeletePlan) -> str:
    name = plan.repo
    if plan.tag:
        title = f"Delete tag {name}:{plan.tag}?"
        consequences = [render("The tag goes; the manifest $d stays, with any other tags.",
                               d=_digest_link(name, plan.digest)),
                        render("Clients that pull <code>$n:$t</code> get “manifest unknown” until it is pushed again.",
                               n=name, t=plan.tag)]
    else:
        title = f"Delete manifest {name}@{short_digest(plan.digest)}?"
        consequences = [render("The manifest goes, and its layers are freed by the next collection if nothing "
                               "else uses them.")]
        if plan.also_tags:
            consequences.append(render("These tags go with it: $tags.", tags=join(
                (render("<code>$t</code>", t=t) for t in plan.also_tags), ", ")))
        if plan.indexes:
            consequences.append(render("It is a platform of $links: pulls of that platform will fail.",
                                       links=join((_digest_link(name, d) for d in plan.indexes), ", ")))
        if plan.referrers:
            consequences.append(render("$n referrer$s (signatures, SBOMs…) stay, referring to nothing.",
                                       n=plan.referrers, s="s" if plan.referrers != 1 else ""))
    content = render("""<ul>$items</ul>
<form method="post" action="$action" class="actions">
<input type="hidden" name="csrf" value="$csrf">
<input type="hidden" name="repo" value="$repo">
<input type="hidden" name="ref" value="$ref">
<button class="danger" type="submit">Delete</button>
<a href="$back">Cancel</a>
</form>""", items=join(render("<li>$c</li>", c=c) for c in consequences), action=url(HOME + "delete"),
                     csrf=chrome.csrf, repo=name, ref=plan.reference, back=reference_url(name, plan.reference))
    crumbs = [("Repositories", HOME), (name, repo_url(name)), ("Delete", None)]
    return layout(chrome, title, content, crumbs)


def storage(chrome: Chrome, stats: Stats, collection: dict[str, int] | None, grace_hours: float) -> str:
    def table(caption: str, rows: list[tuple[str, int | None, int | None]]) -> Markup:
        return _table(caption, ("What", "Count", "Bytes"), (
            _row(what, "" if count is None else f"{count:,}", "" if size is None else _size(size), numeric=(1, 2))
            for what, count, size in rows), numeric=(1, 2))

    parts = [render("<h2>Stored</h2>"), table("What the registry holds (what berth stats counts)", [
        ("Repositories", stats.repositories, None), ("Tags", stats.tags, None),
        ("Manifests (bytes: bodies kept in S3)", stats.manifests, stats.manifest_bytes),
        ("Blobs", stats.blobs, stats.blob_bytes), ("Uploads in progress", stats.uploads, stats.upload_bytes),
        ("In all", None, stats.bytes_stored)])]
    parts += [render("<h2>Reclaimable</h2>"), table("What could be freed", [
        ("Blobs no manifest references", stats.unreferenced_blobs, stats.unreferenced_bytes),
        (f"… of them past the {grace_hours:g} h grace period", stats.collectible_blobs, stats.collectible_bytes),
        ("Abandoned uploads", stats.abandoned_uploads, stats.abandoned_bytes),
        ("In all", None, stats.bytes_reclaimable)])]
    parts.append(render("<h2>What a collection would free</h2>"))
    if collection is None:
        parts.append(render(
            '<p>A dry run of the collector applies the retention rules and the grace period, reading everything '
            'and changing nothing (as <code>berth gc --dry-run</code>).</p>'
            '<form method="get" action="$action"><input type="hidden" name="collect" value="1">'
            '<button type="submit">Work out what a collection would free</button></form>',
            action=url(HOME + "storage")))
    else:
        parts.append(table("A dry run of the collection, now", [
            ("Tags expired by retention rules", collection["tags"], None),
            ("Manifests removed by retention rules", collection["manifests"], None),
            ("Blobs removed", collection["blobs"], collection["bytes"]),
            ("Abandoned uploads purged", stats.abandoned_uploads, stats.abandoned_bytes),
            ("In all", None, collection["bytes"] + stats.abandoned_bytes)]))
    return layout(chrome, "Storage", join(parts), [("Repositories", HOME), ("Storage", None)])


def error(chrome: Chrome | None, title: str, detail: str) -> str:
    content = render('<p>$detail</p><p><a href="$home">Back to the repositories</a></p>', detail=detail, home=HOME)
    return layout(chrome, title, content)


def bounce(target: str) -> str:
    """A page that loads `target` again from this site: arriving from another site, the browser
    sent no SameSite=Strict cookie; a navigation this page starts sends it."""
    head = render('<meta http-equiv="refresh" content="0; url=$target">', target=target)
    content = render('<p><a href="$target">Continue</a></p>', target=target)
    return layout(None, "Opening Berth", content, extra_head=head)
