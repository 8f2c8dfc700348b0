"""`n`/`last` pagination and the `Link` header that points at the next page. Pure logic."""

from __future__ import annotations

from urllib.parse import urlencode

from chalicelib.api.errors import Oci, RegistryError

MAX_PAGE = 1000


def page_size(n: str | None) -> int:
    """The page size asked for, capped at MAX_PAGE (more then follows through `Link`)."""
    if n is None or n == "":
        return MAX_PAGE
    if not (n.isascii() and n.isdigit()):  # str.isdigit alone takes '²', which int() refuses
        raise RegistryError(Oci.PAGINATION_INVALID, detail={"n": n[:32]})
    digits = n.lstrip("0") or "0"
    return MAX_PAGE if len(digits) > len(str(MAX_PAGE)) else min(int(digits), MAX_PAGE)


def next_link(path: str, size: int, items: list[str], more: bool) -> dict[str, str]:
    if not more or not items:
        return {}
    return {"Link": f'<{path}?{urlencode({"n": size, "last": items[-1]})}>; rel="next"'}
