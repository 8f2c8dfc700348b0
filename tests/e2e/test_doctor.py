"""`berth doctor URL`, the real command against the local mode over HTTP: every check passes in
`none` and `token` mode (the features the local mode lacks unconfigured say so), what it pushed
is gone afterwards, and a gateway that behaves as a misconfigured API Gateway would is caught
check by check, with a non-zero exit."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from berth.serving import Handler, RequestBody
from tests.helpers import serving
from tests.local import LocalServer, local_server

pytestmark = pytest.mark.e2e
USER, PASSWORD = "admin", "doctor-test-password"
CHECKS = ("auth", "chunked-patch", "binary-bodies", "manifest-bytes", "size-limits", "blob-redirect", "direct-upload",
          "resumable-sha256", "events", "schedules", "cleanup")


@dataclass
class Run:
    code: int
    statuses: dict[str, str]  # check -> PASS, FAIL, SKIP, WAIT
    lines: dict[str, str]
    output: str


def doctor(url: str, *args: str, password: str | None = None) -> Run:
    result = subprocess.run([sys.executable, "-m", "berth.cli", "doctor", url, *args], input=password,
                            capture_output=True, text=True, timeout=600)
    lines = {}
    for line in result.stdout.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("PASS", "FAIL", "SKIP", "WAIT"):
            lines[rest.split()[0]] = line
    statuses = {check: line.split()[0] for check, line in lines.items()}
    return Run(result.returncode, statuses, lines, result.stdout + result.stderr)


def stats(server: LocalServer) -> dict[str, int]:
    result = subprocess.run([sys.executable, "-m", "berth.cli", "stats", "--local", str(server.port), "--json"],
                            capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(result.stdout))


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with local_server(tmp_path_factory.mktemp("doctor-none"), env={"BERTH_AUTH": "none"}) as server:
        yield server


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """Token auth, a user, and events on moto's default bus."""
    env = {"BERTH_AUTH": "token", "BERTH_BOOTSTRAP_USER": f"{USER}:{PASSWORD}", "BERTH_EVENT_BUS": "default"}
    with local_server(tmp_path_factory.mktemp("doctor-token"), env=env) as server:
        yield server


def test_every_check_passes_without_auth_and_cleans_up(open_registry: LocalServer) -> None:
    run = doctor(f"http://{open_registry.address}")
    assert run.code == 0, run.output
    assert tuple(run.statuses) == CHECKS
    # What the local mode has not configured says so; everything else passes.
    assert run.statuses == {**dict.fromkeys(CHECKS, "PASS"), "auth": "SKIP", "events": "SKIP"}, run.output
    assert "auth is off" in run.lines["auth"] and "not configured" in run.lines["events"]
    left = stats(open_registry)
    assert (left["manifests"], left["tags"], left["uploads"]) == (0, 0, 0), left
    assert left["unreferenced_blobs"] == left["blobs"] > 0  # unlinked; the collector frees their bytes


def test_every_check_passes_with_token_auth_and_events(token_registry: LocalServer) -> None:
    run = doctor(f"http://{token_registry.address}", "--user", USER, "--password-stdin", password=PASSWORD + "\n")
    assert run.code == 0, run.output
    assert run.statuses == dict.fromkeys(CHECKS, "PASS"), run.output
    assert 'WWW-Authenticate: Bearer realm="http://' in run.lines["auth"]
    assert "accepted a `Registry Checked` test event" in run.lines["events"]
    left = stats(token_registry)
    assert (left["manifests"], left["uploads"]) == (0, 0), left


def test_a_wrong_password_fails_and_says_what_to_do(token_registry: LocalServer) -> None:
    run = doctor(f"http://{token_registry.address}", "--user", USER, "--password-stdin", password="wrong\n")
    assert run.code == 1
    assert run.statuses["auth"] == "FAIL" and "| fix: check the user's password" in run.lines["auth"]


class MisconfiguredGateway(Handler):
    """What API Gateway would do to the registry deployed without Berth's merge template: the
    Lambda's challenge header renamed, text bodies re-encoded as UTF-8, and (the unverified
    risk) chunked request bodies not passed on."""

    server_name = "misconfigured-gateway"
    upstream: int

    def do_request(self) -> None:
        body = RequestBody(self.rfile, self.headers)
        data = b"".join(body)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "content-length")}
        if body.chunked:
            data = b""
        elif data and not self.headers.get("Content-Type", "").startswith("application/octet-stream"):
            data = data.decode("utf-8", errors="replace").encode()
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=120)
        try:
            upstream.request(self.command, self.path, body=data, headers={**headers, "Content-Length": str(len(data))})
            response = upstream.getresponse()
            payload = response.read()
        finally:
            upstream.close()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() in ("content-length", "connection", "transfer-encoding"):
                continue
            self.send_header("x-amzn-Remapped-WWW-Authenticate" if name.lower() == "www-authenticate" else name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_request


@pytest.fixture
def misconfigured(token_registry: LocalServer) -> Iterator[str]:
    with serving(type("Gateway", (MisconfiguredGateway,), {"upstream": token_registry.port})) as port:
        yield f"http://127.0.0.1:{port}"


def test_a_misconfigured_gateway_is_caught_check_by_check(misconfigured: str) -> None:
    run = doctor(misconfigured, "--user", USER, "--password-stdin", password=PASSWORD)
    assert run.code == 1, run.output
    assert run.statuses["auth"] == "FAIL" and "x-amzn-Remapped-WWW-Authenticate" in run.lines["auth"]
    assert run.statuses["chunked-patch"] == "FAIL" and "berth relay" in run.lines["chunked-patch"]
    assert run.statuses["binary-bodies"] == "FAIL" and "binary-media-types" in run.lines["binary-bodies"]
    for check in ("auth", "chunked-patch", "binary-bodies"):
        assert " | fix: " in run.lines[check]
    # What is not broken still passes, and what the run pushed is removed all the same.
    assert run.statuses["blob-redirect"] == run.statuses["cleanup"] == "PASS", run.output
