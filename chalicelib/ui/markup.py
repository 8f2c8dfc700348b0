"""HTML from small string templates, escaped everywhere. Pure logic.

Every value put into a template is escaped (`html.escape`, quotes included) unless it is
`Markup`, which only these helpers make: markup built from escaped parts. A template is a
`string.Template` (`$name`), so a value can never be read as template syntax either.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from string import Template
from typing import Any
from urllib.parse import quote, urlencode


class Markup(str):
    """HTML that is safe to put into a page as it is."""


def escape(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def render(template: str, **values: Any) -> Markup:
    return Markup(Template(template).substitute({name: escape(value) for name, value in values.items()}))


def join(parts: Iterable[Markup], separator: str = "") -> Markup:
    return Markup(separator.join(escape(part) for part in parts))


def url(path: str, **query: str | int | None) -> str:
    """A URL under this site: path characters kept as names and references need them
    (`/`, `:`, `@`), the rest percent-encoded, and the query (None values left out) encoded."""
    text = quote(path, safe="/:@")
    pairs = {k: v for k, v in query.items() if v is not None and v != ""}
    return f"{text}?{urlencode(pairs)}" if pairs else text
