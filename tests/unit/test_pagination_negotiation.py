import pytest

from chalicelib.api.pagination import MAX_PAGE, after, next_link, page_size
from chalicelib.errors import Oci, RegistryError
from chalicelib.manifests.negotiation import acceptable, accepted_types


def test_page_size() -> None:
    assert page_size(None) == MAX_PAGE
    assert page_size("0") == 0
    assert page_size("5") == 5
    assert page_size(str(MAX_PAGE * 10)) == MAX_PAGE
    assert page_size("0005") == 5
    assert page_size("9" * 5000) == MAX_PAGE  # past what int() converts
    for bad in ("-1", "x", "1.5", "²", "٣"):
        with pytest.raises(RegistryError) as caught:
            page_size(bad)
        assert caught.value.kind is Oci.PAGINATION_INVALID


def test_last_is_refused_only_when_no_name_can_be_that_long() -> None:
    assert after(None, 128) is None
    assert after("t" * 128, 128) == "t" * 128
    for bad in ("t" * 129, "é" * 65, "\ud800"):
        with pytest.raises(RegistryError) as caught:
            after(bad, 128)
        assert caught.value.kind is Oci.PAGINATION_INVALID


def test_next_link_only_when_more_follow() -> None:
    assert next_link("/v2/a/tags/list", 2, ["a", "b"], more=False) == {}
    assert next_link("/v2/a/tags/list", 2, ["a", "b"], more=True) == {
        "Link": '</v2/a/tags/list?n=2&last=b>; rel="next"'
    }


def test_accept_headers_are_split_and_parameters_dropped() -> None:
    assert accepted_types(["a/b; q=0.5, c/d", "e/f"]) == ["a/b", "c/d", "e/f"]


def test_acceptable() -> None:
    oci = "application/vnd.oci.image.index.v1+json"
    assert acceptable(oci, [])
    assert acceptable(oci, ["*/*"])
    assert acceptable(oci, ["application/vnd.docker.distribution.manifest.v2+json", oci])
    assert not acceptable(oci, ["application/vnd.docker.distribution.manifest.v2+json"])
