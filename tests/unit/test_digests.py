import hashlib

import pytest

from chalicelib.digest.digests import Digest, looks_like_digest
from chalicelib.errors import Oci, RegistryError

SHA256_EMPTY = "sha256:" + hashlib.sha256(b"").hexdigest()


def test_parses_sha256_and_sha512() -> None:
    assert str(Digest.parse(SHA256_EMPTY)) == SHA256_EMPTY
    sha512 = "sha512:" + hashlib.sha512(b"x").hexdigest()
    assert Digest.parse(sha512).algorithm == "sha512"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("sha256:abc", "64 lowercase hex"),
        ("sha256:" + "A" * 64, "64 lowercase hex"),
        ("sha512:" + "a" * 64, "128 lowercase hex"),
        ("md5:" + "a" * 32, "unsupported digest algorithm 'md5'"),
        ("sha256", "invalid digest"),
        ("", "invalid digest"),
        ("sha256:" + "g" * 64, "64 lowercase hex"),
        (":" + "a" * 64, "invalid digest"),
    ],
)
def test_refuses_bad_digests_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(RegistryError) as caught:
        Digest.parse(text)
    assert caught.value.kind is Oci.DIGEST_INVALID
    assert fragment in caught.value.message


def test_of_and_matches() -> None:
    assert str(Digest.of(b"")) == SHA256_EMPTY
    assert Digest.parse(SHA256_EMPTY).matches(b"")
    assert not Digest.parse(SHA256_EMPTY).matches(b"x")
    assert Digest.of(b"x", "sha512").matches(b"x")


def test_references_with_a_colon_are_digests() -> None:
    assert looks_like_digest(SHA256_EMPTY)
    assert not looks_like_digest("latest")
