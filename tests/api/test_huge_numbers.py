"""Numbers in headers and query values, of any length or spelling: a 4xx OCI error (or, where a
number only asks for "at most", the cap), never a 500 from int()'s limit of 4,300 digits, and
never a number int() reads but the spec's grammar does not (' 7', '+7', '1_0', '٧')."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.api.oci_fixtures import assert_oci_error
from tests.helpers import digest_of, start_upload

REPO = "team/numbers"
HUGE = "9" * 5000
CHUNK = b"first bytes"


def _open_with_a_chunk(client: Any) -> str:
    location = start_upload(client, REPO)
    response = client.patch(location, body=CHUNK, headers={"Content-Range": f"0-{len(CHUNK) - 1}"})
    assert response.status == 202, response.body
    return str(response.header("Location"))


def _unchanged(client: Any, location: str) -> None:
    status = client.get(location)
    assert status.status == 204 and status.header("Range") == f"0-{len(CHUNK) - 1}"


@pytest.mark.parametrize("content_range", [
    f"{len(CHUNK)}-{HUGE}", f"{HUGE}-{HUGE}", f"bytes={HUGE}-{HUGE}/{HUGE}", f"0{HUGE}-{HUGE}",
    f"{2**63}-{2**63 + 2}", f"{2**63 - 1}-{2**63 + 1}",
])
def test_a_content_range_of_thousands_of_digits_is_refused(client: Any, content_range: str) -> None:
    location = _open_with_a_chunk(client)
    response = client.patch(location, body=b"abc", headers={"Content-Range": content_range})
    assert response.status in (400, 416)
    assert_oci_error(response, response.status)
    _unchanged(client, location)
    put = client.put(f"{location}?digest={digest_of(CHUNK + b'abc')}", body=b"abc",
                     headers={"Content-Range": content_range})
    assert put.status in (400, 416)
    assert_oci_error(put, put.status)
    _unchanged(client, location)


def test_thousands_of_leading_zeros_or_a_total_of_thousands_of_digits_change_nothing(client: Any) -> None:
    location = _open_with_a_chunk(client)
    start, end = "0" * 5000 + str(len(CHUNK)), "0" * 5000 + str(len(CHUNK) + 2)
    response = client.patch(location, body=b"abc", headers={"Content-Range": f"{start}-{end}/{HUGE}"})
    assert response.status == 202 and response.header("Range") == f"0-{len(CHUNK) + 2}"


@pytest.mark.parametrize("size", [HUGE, "+20000000", " 20000000", "20_000_000", "٢٠٠٠٠٠٠٠", "2e7", "0x1000000"])
def test_a_direct_upload_size_must_be_ascii_digits_of_a_possible_size(client: Any, size: str) -> None:
    response = client.post(f"/v2/{REPO}/blobs/uploads/?berth-direct={quote(size)}")
    assert_oci_error(response, 400, "SIZE_INVALID")


def _two_part_upload(client: Any) -> str:
    started = client.post(f"/v2/{REPO}/blobs/uploads/?berth-direct=20000000")
    assert started.status == 202 and started.header("Berth-Part-Count") == "2", started.body
    return str(started.header("Location"))


@pytest.mark.parametrize("name, value", [("first", HUGE), ("first", "3"), ("first", "١"), ("count", "+5"),
                                         ("first", "-1"), ("count", "1_0"), ("first", " 1"), ("count", "0")])
def test_part_listing_numbers_of_any_spelling_are_refused(client: Any, name: str, value: str) -> None:
    response = client.get(f"{_two_part_upload(client)}/parts?{name}={quote(value)}")
    assert_oci_error(response, 400, "BLOB_UPLOAD_INVALID")


def test_a_part_count_of_thousands_of_digits_asks_for_every_url(client: Any) -> None:
    response = client.get(f"{_two_part_upload(client)}/parts?first=0002&count={HUGE}")
    assert response.status == 200 and [u["number"] for u in response.json()["urls"]] == [2]


def test_a_page_size_of_thousands_of_digits_is_the_largest_page(client: Any) -> None:
    assert client.get(f"/v2/_catalog?n={HUGE}").status == 200
    assert_oci_error(client.get("/v2/_catalog?n=%2B5"), 400, "UNSUPPORTED")
