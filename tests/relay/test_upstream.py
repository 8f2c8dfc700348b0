"""Where the upstream is, and whose credentials the relay acts with there."""

from __future__ import annotations

import base64

import pytest

from berth.cli import main
from berth.client import Credentials
from berth.relay.upstream import PassedOn, Upstream, basic_credentials


@pytest.mark.parametrize(("text", "origin"), [
    ("https://registry.example.com", "https://registry.example.com"),
    ("https://registry.example.com:8443/", "https://registry.example.com:8443"),
    ("http://10.0.0.5:5000", "http://10.0.0.5:5000"),
    ("registry.example.com", "https://registry.example.com"),
    ("127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("localhost:5000", "http://localhost:5000"),
])
def test_upstream_urls(text: str, origin: str) -> None:
    assert Upstream.parse(text).origin == origin


@pytest.mark.parametrize("text", ["https://api.example.com/stage", "ftp://x", "https://u:p@x", "https://x?a=1", ""])
def test_upstreams_that_are_not_a_registry_root_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Upstream.parse(text)


def test_basic_credentials_log_in_and_anything_else_is_passed_on() -> None:
    upstream = Upstream.parse("https://registry.example.com")
    basic = "Basic " + base64.b64encode(b"ci:s3cret:with-colon").decode()
    assert basic_credentials(basic) == Credentials("ci", "s3cret:with-colon")
    assert basic_credentials("Basic not-base64!") is None
    assert basic_credentials("Bearer abc") is None

    bearer = upstream.client("Bearer abc")
    assert isinstance(bearer.session.auth, PassedOn)
    assert bearer.session.auth.header("repository:a:pull") == "Bearer abc"
    assert not isinstance(upstream.client(basic).session.auth, PassedOn)


@pytest.mark.parametrize("args", [
    ["--upstream", "https://api.example.com/stage"],
    ["--upstream", "https://registry.example.com", "--listen", "5001"],
    ["--upstream", "https://registry.example.com", "--parallel", "0"],
])
def test_the_command_refuses_bad_arguments(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["relay", *args]) == 2
    assert capsys.readouterr().err.startswith("berth: ")
