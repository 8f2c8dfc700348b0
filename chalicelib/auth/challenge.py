"""The `WWW-Authenticate` challenges of the Docker token and Basic schemes. Pure logic."""

from __future__ import annotations


def bearer(realm: str, service: str, scope: str | None = None, error: str | None = None) -> str:
    parts = [f'realm="{realm}"', f'service="{service}"']
    if scope:
        parts.append(f'scope="{scope}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)


def basic(realm: str) -> str:
    return f'Basic realm="{realm}",charset="UTF-8"'
