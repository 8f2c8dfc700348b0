import time

import pytest

from chalicelib.uploads.state import (
    PART_MIN,
    Piece,
    PieceName,
    UploadState,
    parse_content_range,
    parse_piece_key,
    piece_hour,
    range_header,
    valid_uuid,
)


def test_small_chunks_wait_as_pieces_until_they_fill_a_part() -> None:
    state = UploadState.new("repo", None)
    assert not state.fills_part(PART_MIN - 1)
    state = state.with_piece(Piece("k1", 3 * 1024 * 1024), None)
    assert state.offset == 3 * 1024 * 1024 and state.tail_size == 3 * 1024 * 1024
    assert not state.fills_part(2 * 1024 * 1024 - 1)
    assert state.fills_part(2 * 1024 * 1024)


def test_a_part_absorbs_the_pieces() -> None:
    state = UploadState.new("repo", None).with_piece(Piece("k1", 10), None)
    state = state.with_part("mpu", 1, PART_MIN, b"h")
    assert state.pieces == () and state.parts == (1,)
    assert state.offset == 10 + PART_MIN and state.multipart_id == "mpu" and state.hash_state == b"h"


MiB = 1024 * 1024


def test_a_4_mib_chunk_that_fills_a_part_holds_back_what_lets_the_next_one_fill_a_part() -> None:
    waiting = UploadState.new("repo", None).with_piece(Piece("k1", 4 * MiB), None)
    assert waiting.tail_to_hold(4 * MiB) == PART_MIN - 4 * MiB  # the part is 7 MiB, 1 MiB waits
    assert waiting.tail_to_hold(int(4.25 * MiB)) == PART_MIN - int(4.25 * MiB)
    # The 1 MiB held back and the next 4 MiB make exactly a part: nothing is left to hold.
    held = UploadState.new("repo", None).with_piece(Piece("k2", 1 * MiB), None)
    assert held.fills_part(4 * MiB) and held.tail_to_hold(4 * MiB) == 0


def test_chunks_under_four_fifths_of_a_part_hold_nothing_back() -> None:
    """Below that, holding back costs more when the upload ends than it saves when it goes on."""
    waiting = UploadState.new("repo", None).with_piece(Piece("k1", 4 * MiB), None)
    assert waiting.tail_to_hold(4 * MiB - 1) == 0
    assert waiting.tail_to_hold(PART_MIN) == 0 and waiting.tail_to_hold(6 * MiB) == 0


def test_piece_keys_are_unique_per_attempt_and_filed_by_hour() -> None:
    state = UploadState.new("repo", None)
    assert state.piece_key(5) != state.piece_key(5)
    hour = piece_hour(time.time())
    assert state.piece_key(5).startswith(f"blobs/pieces/{hour}/{state.uuid}.5.")
    assert hour == time.strftime("%Y%m%d%H", time.gmtime())  # the hour it is, in UTC


def test_a_piece_key_says_its_upload_and_the_digest_of_a_first_piece() -> None:
    state, digest = UploadState.new("repo", None), "sha256:" + "ab" * 32
    assert parse_piece_key(state.piece_key(7)) == PieceName(state.uuid, None)
    assert parse_piece_key(state.piece_key(0, digest)) == PieceName(state.uuid, digest)
    assert parse_piece_key(state.object_key) is None
    for other in ("blobs/pieces/2025010100/not-a-uuid.0.x", f"blobs/pieces/2025010100/{state.uuid}", "manifests/x"):
        assert parse_piece_key(other) is None


@pytest.mark.parametrize(
    "header, expected",
    [("0-99", (0, 99)), ("bytes=5-9", (5, 9)), ("bytes 5-9/100", (5, 9)), ("5-9/*", (5, 9)),
     ("9-5", None), ("a-b", None), ("5", None), ("", None), ("٠-٣", None),
     (f"{2**63 - 1}-{2**63 - 1}", (2**63 - 1, 2**63 - 1)), (f"0-{2**63}", None), ("0-" + "9" * 5000, None),
     ("9" * 5000 + "-" + "9" * 5000, None), ("0" * 5000 + "5-" + "0" * 5000 + "9", (5, 9))],
)
def test_content_range(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_content_range(header) == expected


def test_range_header_is_inclusive_and_0_0_when_empty() -> None:
    assert range_header(0) == "0-0"
    assert range_header(1) == "0-0"
    assert range_header(100) == "0-99"


def test_uuid_shape() -> None:
    assert valid_uuid(UploadState.new("r", None).uuid)
    assert not valid_uuid("../../etc")
    assert not valid_uuid("0" * 31)


def test_a_lone_piece_is_the_blob_only_with_nothing_else_and_named_with_its_digest() -> None:
    empty, digest = UploadState.new("repo", None), "sha256:" + "ab" * 32
    one = empty.with_piece(Piece(empty.piece_key(0, digest), 10), None)
    assert one.lone_piece_is_blob(0, digest)
    assert not one.lone_piece_is_blob(0, "sha512:" + "ab" * 64)  # pushed as another digest: an object of its own
    assert not one.lone_piece_is_blob(1, digest)
    assert not one.with_piece(Piece("k2", 10), None).lone_piece_is_blob(0, digest)
    assert not empty.lone_piece_is_blob(0, digest)
    assert not one.with_part("mpu", 1, PART_MIN, None).with_piece(Piece("k3", 1), None).lone_piece_is_blob(0, digest)
