import hashlib
import os

import pytest

from chalicelib.digest.resumable import STATE_SIZE, ResumableSha256, available

pytestmark = pytest.mark.skipif(not available(), reason="libcrypto SHA256_* not exported here")


def test_state_survives_a_round_trip_through_bytes() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    running = ResumableSha256()
    # Odd chunk sizes cross the 64-byte block boundary in every way.
    for start in range(0, len(data), 999_983):
        running = ResumableSha256(running.state())
        running.update(data[start : start + 999_983])
    assert running.hexdigest() == hashlib.sha256(data).hexdigest()


def test_hexdigest_leaves_the_running_state_usable() -> None:
    running = ResumableSha256()
    running.update(b"abc")
    assert running.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    running.update(b"def")
    assert running.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


def test_state_is_the_documented_size_and_checked() -> None:
    assert len(ResumableSha256().state()) == STATE_SIZE
    with pytest.raises(ValueError):
        ResumableSha256(b"short")
