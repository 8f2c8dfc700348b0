"""docker and ctr against the local mode with auth, in token and in Basic mode (one registry per
mode for the module, with an admin, `reader` who may pull `team/*`, and anonymous pulls of
`public/*`): `docker login`, push and pull; and each refusal, which must reach the user at once
(docker 20.10 used to retry a refused push for ~50 s) with the words docker and ctr use for the
reference registry's. The refusals' wording, token mode / Basic mode:

- docker push: "denied: requested access to the resource is denied" / the same;
- docker pull, anonymous: "pull access denied for R/N, repository does not exist or may require
  'docker login'" / "no basic auth credentials";
- ctr push: "server message: insufficient_scope: authorization failed" / "unexpected status: 403
  Forbidden";
- ctr pull, anonymous: "pull access denied, repository does not exist or may require
  authorization" / "401 Unauthorized".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.engines import Ctr, Docker
from tests.e2e.images import docker_archive, layer
from tests.e2e.test_auth import ADMIN
from tests.e2e.test_auth_clients import Secured, start
from tests.e2e.test_docker import GIVE_UP_SECONDS, inspect, load, pushed_digest, timed

pytestmark = pytest.mark.e2e

READER = "reader:reader-pw"


@pytest.fixture(scope="module", params=["token", "basic"])
def secured(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    yield from start(request.param, tmp_path_factory)


def login(docker: Docker, secured: Secured, credentials: str, config: Path) -> None:
    user, password = credentials.split(":")
    docker.ok("login", "-u", user, "--password-stdin", secured.address, config=config, stdin=password)


def seeded(docker: Docker, secured: Secured, tmp_path: Path, name: str) -> str:
    """An image the admin pushed as `name`, no longer in the engine: its ID."""
    ref = f"{secured.address}/{name}"
    image_id = load(docker, tmp_path, ref, [layer(2_000), layer(40_000)])
    admin = tmp_path / f"admin-{os.urandom(4).hex()}"
    login(docker, secured, ADMIN, admin)
    docker.ok("push", ref, config=admin)
    docker.ok("rmi", ref)
    return image_id


@pytest.mark.parametrize("secured", ["token"], indirect=True)  # the flow docker users know; Basic: refusals
def test_docker_logs_in_pushes_and_pulls(docker: Docker, secured: Secured, tmp_path: Path) -> None:
    ref = f"{secured.address}/team/app:1"
    image_id = load(docker, tmp_path, ref, [layer(3_000), layer(100_000)])
    admin, reader = tmp_path / "admin", tmp_path / "reader"
    login(docker, secured, ADMIN, admin)
    digest = pushed_digest(docker.ok("push", ref, config=admin))

    login(docker, secured, READER, reader)
    docker.ok("rmi", ref)
    docker.ok("pull", ref, config=reader)
    pulled = inspect(docker, ref)
    assert pulled["Id"] == image_id
    assert pulled["RepoDigests"] == [f"{secured.address}/team/app@{digest}"]


def test_a_refused_push_is_denied_at_once(docker: Docker, secured: Secured, tmp_path: Path) -> None:
    ref = f"{secured.address}/team/refused:1"
    load(docker, tmp_path, ref, [layer(2_000)])
    reader = tmp_path / "reader"
    login(docker, secured, READER, reader)
    result, seconds = timed(lambda: docker.run("push", ref, config=reader))
    assert result.returncode != 0
    assert result.stderr.strip().endswith("denied: requested access to the resource is denied"), result.stderr
    assert seconds < GIVE_UP_SECONDS, seconds


def test_an_anonymous_pull_that_is_refused_asks_for_docker_login(
        docker: Docker, secured: Secured, tmp_path: Path) -> None:
    seeded(docker, secured, tmp_path, "team/private:1")
    result, seconds = timed(lambda: docker.run("pull", f"{secured.address}/team/private:1", config=tmp_path / "anon"))
    assert result.returncode != 0
    if secured.mode == "token":
        assert (f"pull access denied for {secured.address}/team/private, repository does not exist or may require "
                "'docker login'") in result.stderr
    else:
        assert "no basic auth credentials" in result.stderr
    assert seconds < GIVE_UP_SECONDS, seconds


@pytest.mark.parametrize("secured", ["token"], indirect=True)  # Basic mode has no anonymous access
def test_anonymous_pulls_of_public_repositories_work_in_token_mode(
        docker: Docker, secured: Secured, tmp_path: Path) -> None:
    image_id = seeded(docker, secured, tmp_path, "public/tool:1")
    docker.ok("pull", f"{secured.address}/public/tool:1", config=tmp_path / "anon")
    assert inspect(docker, f"{secured.address}/public/tool:1")["Id"] == image_id


def test_ctr_pushes_with_credentials_and_each_refusal_stops_at_once(
        ctr: Ctr, secured: Secured, tmp_path: Path) -> None:
    ref = f"{secured.address}/team/ctr:1"
    archive = tmp_path / "ctr.tar"
    docker_archive(archive, [layer(5_000)], ref)
    ctr.ok("images", "import", str(archive))

    refused, seconds = timed(lambda: ctr.run("images", "push", "--plain-http", "--user", READER, ref))
    assert refused.returncode != 0
    assert seconds < GIVE_UP_SECONDS, seconds
    ctr.ok("images", "push", "--plain-http", "--user", ADMIN, ref)

    anonymous, seconds = timed(lambda: ctr.run("images", "pull", "--plain-http", ref))
    assert anonymous.returncode != 0
    assert seconds < GIVE_UP_SECONDS, seconds
    if secured.mode == "token":
        assert "server message: insufficient_scope: authorization failed" in refused.stderr
        assert "pull access denied, repository does not exist or may require authorization: server message: " \
               "insufficient_scope: authorization failed" in anonymous.stderr
    else:
        assert "unexpected status: 403 Forbidden" in refused.stderr
        assert "401 Unauthorized" in anonymous.stderr
    ctr.ok("images", "pull", "--plain-http", "--user", READER, ref)

