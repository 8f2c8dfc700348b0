"""`n`/`last` pagination and the `Link` header that points at the next page. Pure logic."""

from __future__ import annotations

from urllib.parse import urlencode

from chalicelib.errors import Oci, RegistryError
from chalicelib.numbers import whole_number

MAX_PAGE = 1000


def page_size(n: str | None) -> int:
    """The page size asked for, capped at MAX_PAGE (more then follows through `Link`)."""
    if n is None or n == "":
        return MAX_PAGE
    size = whole_number(n, MAX_PAGE)
    if size is None:
        raise RegistryError(Oci.PAGINATION_INVALID, detail={"n": n[:32]})
    return size


def after(last: str | None, longest: int) -> str | None:
    """`last`, refused when it is longer (in UTF-8) than any name the listing holds: no client
    got it from a listing, and DynamoDB refuses a start key past 1,024 bytes."""
    if last is None:
        return None
    try:
        fits = len(last.encode("utf-8")) <= longest
    except UnicodeEncodeError:
        fits = False
    if not fits:
        raise RegistryError(Oci.PAGINATION_INVALID, f"last is longer than any name here ({longest} bytes)",
                            detail={"last": last[:32]})
    return last


def next_link(path: str, size: int, items: list[str], more: bool) -> dict[str, str]:
    if not more or not items:
        return {}
    return {"Link": f'<{path}?{urlencode({"n": size, "last": items[-1]})}>; rel="next"'}
