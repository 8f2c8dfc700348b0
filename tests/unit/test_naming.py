import pytest

from chalicelib.errors import Oci, RegistryError
from chalicelib.naming import check_name, check_tag


@pytest.mark.parametrize("name", ["a", "library/ubuntu", "a.b_c__d-e--f/g1", "x/y/z/w", "a" * 255])
def test_accepts_names_of_the_grammar(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["A", "a/", "/a", "a//b", "a_", "-a", "a:b", "a___b", "a" * 256, "a b"])
def test_refuses_other_names(name: str) -> None:
    with pytest.raises(RegistryError) as caught:
        check_name(name)
    assert caught.value.kind is Oci.NAME_INVALID


@pytest.mark.parametrize("tag", ["latest", "v1.0.0", "_x", "A-b.c_d", "a" * 128])
def test_accepts_tags(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", [".x", "-x", "a" * 129, "a/b", "", "a+b"])
def test_refuses_bad_tags(tag: str) -> None:
    with pytest.raises(RegistryError) as caught:
        check_tag(tag)
    assert caught.value.kind is Oci.MANIFEST_INVALID
