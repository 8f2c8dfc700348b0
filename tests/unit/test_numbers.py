import pytest

from chalicelib.numbers import whole_number


@pytest.mark.parametrize("text, expected", [
    ("0", 0), ("7", 7), ("007", 7), ("0" * 5000 + "42", 42), ("1000", 1000), ("1001", 1000), ("99999", 1000),
    ("9" * 5000, 1000),  # past int()'s 4,300 digits: read as the cap, never built
])
def test_ascii_digits_read_as_their_value_up_to_the_cap(text: str, expected: int) -> None:
    assert whole_number(text, 1000) == expected


@pytest.mark.parametrize("text", ["", " 7", "7 ", "+7", "-7", "1_0", "٧", "²", "７", "0x10", "1e3", "7.0", "\u00a07",
                                  "-" + "9" * 5000])
def test_anything_but_ascii_digits_is_no_number(text: str) -> None:
    assert whole_number(text, 1000) is None
