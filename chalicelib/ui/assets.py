"""The pages' stylesheet and script, served under names that carry a hash of their content,
so browsers may keep them for a year: a new version is a new name."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

STYLESHEET = """
:root{--fg:#1c2430;--muted:#5b6676;--bg:#fff;--panel:#f5f7fa;--line:#d9dee5;--link:#0b57c2;
--accent:#0b57c2;--danger:#b3261e;--ok:#146c2e;--warn:#8a5a00;--focus:#f2b01e;font-size:100%}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ee;--muted:#a3adbb;--bg:#12161c;--panel:#1b2129;
--line:#323b47;--link:#8ab4f8;--accent:#8ab4f8;--danger:#f2877d;--ok:#7dd197;--warn:#e8c06a}}
*{box-sizing:border-box}
body{margin:0;font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--link)}
a:focus-visible,button:focus-visible,input:focus-visible,summary:focus-visible,main:focus-visible{
outline:3px solid var(--focus);outline-offset:2px}
.skip{position:absolute;left:-999px}.skip:focus{left:.5rem;top:.5rem;background:var(--bg);padding:.25rem .5rem}
header.top{border-bottom:1px solid var(--line);background:var(--panel)}
header.top nav{display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:center;max-width:72rem;margin:0 auto;
padding:.6rem 1rem}
.brand{font-weight:700;text-decoration:none;color:var(--fg);margin-right:.5rem}
.who{margin-left:auto;color:var(--muted)}
main{display:block;max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.5rem 0 1rem;overflow-wrap:anywhere}
h2{font-size:1.15rem;margin:1.75rem 0 .5rem}
h3{font-size:1rem;margin:1.25rem 0 .5rem}
.crumbs{margin:0;padding:0;list-style:none;display:flex;flex-wrap:wrap;gap:.25rem;color:var(--muted)}
.crumbs li+li::before{content:"/";margin-right:.25rem}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:.95rem}
caption{text-align:left;padding:.5rem .75rem;color:var(--muted);caption-side:top}
th,td{text-align:left;padding:.45rem .75rem;border-top:1px solid var(--line);vertical-align:top}
thead th{background:var(--panel);border-top:0;white-space:nowrap}
td.num,th.num{text-align:right;white-space:nowrap}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}
td code,dd code{overflow-wrap:anywhere}
td a code,time{white-space:nowrap}
pre{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:.5rem .75rem;margin:0;
white-space:pre-wrap;overflow-wrap:anywhere}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.35rem 1rem;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
.badge{display:inline-block;border:1px solid var(--line);border-radius:999px;padding:0 .5rem;font-size:.8rem;
color:var(--muted);white-space:nowrap}
.badge.ok{color:var(--ok);border-color:currentColor}.badge.warn{color:var(--warn);border-color:currentColor}
.muted{color:var(--muted)}
form.search{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end;margin:0 0 1rem}
label{display:block;font-weight:600;margin-bottom:.25rem}
input[type=text],input[type=search],input[type=password]{font:inherit;padding:.45rem .6rem;
border:1px solid var(--muted);border-radius:6px;background:var(--bg);color:var(--fg);width:100%;max-width:24rem}
button,.button{font:inherit;padding:.4rem .9rem;border-radius:6px;border:1px solid var(--accent);
background:var(--accent);color:var(--bg);cursor:pointer;text-decoration:none;display:inline-block}
button.plain{background:transparent;color:var(--link);border-color:var(--line)}
button.danger,.button.danger{background:var(--danger);border-color:var(--danger)}
.field{margin:0 0 1rem}
.login{max-width:24rem}
.notice{border-left:4px solid var(--ok);background:var(--panel);padding:.5rem .75rem;margin:0 0 1rem}
.notice.error{border-color:var(--danger)}
.pager{display:flex;gap:1rem;margin:1rem 0}
.commands{display:grid;gap:.5rem}
.command{display:grid;grid-template-columns:5rem 1fr auto;gap:.5rem;align-items:center}
.command .status{grid-column:2/4;font-size:.85rem;color:var(--ok);min-height:0}
.command .status:empty{display:none}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;align-items:center}
details summary{cursor:pointer}
@media (max-width:40rem){.command{grid-template-columns:1fr}.command .status{grid-column:1}
dl.facts{grid-template-columns:1fr}dl.facts dd{margin-bottom:.4rem}main{padding:.75rem}
th,td{padding:.4rem .5rem}}
"""

SCRIPT = """
(function () {
  "use strict";
  function announce(button, text) {
    var status = document.getElementById(button.getAttribute("data-status"));
    if (status) { status.textContent = text; }
  }
  function copyBySelection(source) {
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try { return document.execCommand("copy"); } catch (error) { return false; }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    var text = source.textContent;
    function fallback() {
      announce(button, copyBySelection(source) ? "Copied." : "Selected: press Ctrl+C to copy.");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { announce(button, "Copied."); }, fallback);
    } else {
      fallback();
    }
  });
  document.querySelectorAll("button[data-copy]").forEach(function (button) { button.hidden = false; });
})();
"""


@dataclass(frozen=True)
class Asset:
    name: str
    content_type: str
    body: str


def _asset(stem: str, suffix: str, content_type: str, body: str) -> Asset:
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:12]
    return Asset(f"{stem}.{digest}.{suffix}", content_type, body)


CSS = _asset("berth", "css", "text/css; charset=utf-8", STYLESHEET)
JS = _asset("berth", "js", "text/javascript; charset=utf-8", SCRIPT)
ASSETS = {asset.name: asset for asset in (CSS, JS)}
