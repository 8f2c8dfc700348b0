"""The `WWW-Authenticate` challenge a registry answers 401 with, parsed. Pure logic. The
pull-through cache reads its upstreams' challenges with it, and the client library
(berth/client/auth.py) its registries'."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lowercase: "bearer" or "basic"
    params: dict[str, str]


_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_challenge(header: str | None) -> Challenge | None:
    """The first challenge of a `WWW-Authenticate` header, e.g.
    `Bearer realm="https://r/token",service="berth",scope="repository:a:pull"`."""
    if not header or not header.strip():
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {m[1].lower(): re.sub(r"\\(.)", r"\1", m[2]) if m[2] is not None else m[3]
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)
