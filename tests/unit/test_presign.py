"""A presigned URL never claims to live longer than the credentials that signed it."""

from __future__ import annotations

from chalicelib.storage.s3 import CREDENTIALS_MARGIN, presign_lifetime

NOW = 1_700_000_000.0


def test_without_a_known_expiry_the_configured_lifetime_stands() -> None:
    assert presign_lifetime(900, None, NOW) == 900


def test_credentials_with_time_to_spare_leave_the_lifetime_alone() -> None:
    assert presign_lifetime(900, NOW + 6 * 3600, NOW) == 900


def test_a_url_ends_a_margin_before_its_credentials() -> None:
    assert presign_lifetime(3600, NOW + 1200, NOW) == 1200 - CREDENTIALS_MARGIN
    assert presign_lifetime(3600, NOW + 1200.9, NOW) == 1200 - CREDENTIALS_MARGIN  # whole seconds, rounded down


def test_credentials_about_to_expire_still_give_a_positive_lifetime() -> None:
    assert presign_lifetime(900, NOW + 30, NOW) == 1
    assert presign_lifetime(900, NOW - 5, NOW) == 1
