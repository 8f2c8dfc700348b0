"""Which stored manifest a client's Accept headers allow. Pure logic."""

from __future__ import annotations


def accepted_types(accept_values: list[str]) -> list[str]:
    """Media types from every Accept header (clients send several), parameters dropped."""
    types = []
    for value in accept_values:
        for part in value.split(","):
            media_type = part.split(";")[0].strip().lower()
            if media_type:
                types.append(media_type)
    return types


def acceptable(media_type: str, accept_values: list[str]) -> bool:
    """No Accept header, a wildcard, or the stored type itself: the client can take it."""
    types = accepted_types(accept_values)
    if not types:
        return True
    return any(t in ("*/*", "application/*", media_type) for t in types)
