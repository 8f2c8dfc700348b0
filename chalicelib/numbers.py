"""Whole numbers in request headers and query values. Pure logic.

int() is the wrong reader for hostile text: it takes ' 7', '+7', '1_0' and any script's digits
('٧'), and raises past 4,300 digits. Here a number is ASCII digits only, of any length."""

from __future__ import annotations


def whole_number(text: str, cap: int) -> int | None:
    """`text` as a whole number, or None when it is not one. A number above `cap` reads as
    `cap`: callers pick a cap past every value they take (or the most they hand out), so
    that a number of any length is read without ever building it."""
    if not (text.isascii() and text.isdigit()):  # isdigit alone takes '²', which int() refuses
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(cap)):
        return cap
    return min(int(digits), cap)
