"""Local engines that hold images, and what `berth push` asks of them: an image's ID and diff IDs
(`inspect`), and the image as a `docker save` stream (`save`), read as it comes
(berth.client.saved).

- `DockerEngine`: the Docker Engine API on its unix socket (`DOCKER_HOST=unix://...`, else
  /var/run/docker.sock), or over plain TCP (`tcp://HOST:PORT`, as Docker-in-Docker serves it with
  TLS off): `GET /images/{name}/json` and `GET /images/{id}/get`.
- `Podman`: the `podman` command, as the user who runs it: `podman image inspect` and
  `podman image save --format docker-archive` to a pipe. Neither needs a daemon or root (podman's
  API service would have to be started first; `podman image mount` needs a user namespace when
  rootless and yields a merged root file system, not the layers whose digests the image has).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import IO, Any, Protocol
from urllib.parse import quote

from berth.client.content import BLOCK
from berth.client.errors import ClientError

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# Docker 20.10 writes a whole save to a temporary directory before it sends the first byte.
ENGINE_TIMEOUT = 600.0
MAX_INSPECT = 16 * 1024 * 1024
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_HEX = re.compile(r"^[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class EngineImage:
    """What an engine says about an image before saving it."""

    id: str  # sha256:<hex>, the digest of its config
    diff_ids: tuple[str, ...]  # the digests of its layers as uncompressed tars, bottom first


class Engine(Protocol):
    label: str  # for messages: which engine, where

    def inspect(self, name: str) -> EngineImage: ...

    def save(self, image_id: str) -> AbstractContextManager[IO[bytes]]:
        """The image as a `docker save` tar stream, read front to back once."""
        ...


def _image(doc: Any, name: str, label: str) -> EngineImage:
    try:
        image_id, diff_ids = doc["Id"], tuple(doc["RootFS"]["Layers"] or ())
    except (KeyError, TypeError) as error:
        raise ClientError(f"{label} described {name} without an ID or layers") from error
    if isinstance(image_id, str) and _HEX.match(image_id):
        image_id = f"sha256:{image_id}"  # podman leaves the algorithm out
    if not all(isinstance(d, str) and _DIGEST.match(d) for d in (image_id, *diff_ids)):
        raise ClientError(f"{label} described {name} with digests that are not sha256")
    return EngineImage(image_id, diff_ids)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class DockerEngine:
    def __init__(self, host: str | None = None) -> None:
        host = host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
        scheme, _, address = host.partition("://")
        if scheme not in ("unix", "tcp") or not address or (scheme == "tcp" and os.environ.get("DOCKER_TLS_VERIFY")):
            raise ClientError(f"docker-daemon: reads the Docker engine on a unix socket or plain TCP, not "
                              f"DOCKER_HOST={host}{' with TLS' if scheme == 'tcp' else ''} (docker save -o FILE, "
                              "then push docker-archive:FILE)")
        self.scheme, self.address = scheme, address.rstrip("/")
        self.label = f"the Docker engine at {host}"

    def _get(self, path: str) -> http.client.HTTPResponse:
        connection = _UnixConnection(self.address, ENGINE_TIMEOUT) if self.scheme == "unix" \
            else http.client.HTTPConnection(self.address, timeout=ENGINE_TIMEOUT)
        try:
            connection.request("GET", path)
            return connection.getresponse()
        except OSError as error:
            connection.close()
            raise ClientError(f"cannot reach {self.label}: {error}") from error

    def _refusal(self, response: http.client.HTTPResponse, what: str) -> ClientError:
        try:
            message = json.loads(response.read(MAX_INSPECT)).get("message")
        except (ValueError, AttributeError, OSError):
            message = None
        response.close()
        return ClientError(f"{self.label} {what}: {message or response.status}")

    def inspect(self, name: str) -> EngineImage:
        response = self._get(f"/images/{quote(name, safe='/:@')}/json")
        if response.status != 200:
            raise self._refusal(response, f"has no image {name}" if response.status == 404 else f"refused {name}")
        try:
            doc = json.loads(response.read(MAX_INSPECT))
        except (ValueError, OSError) as error:
            raise ClientError(f"{self.label} described {name} unreadably: {error}") from error
        finally:
            response.close()
        return _image(doc, name, self.label)

    @contextmanager
    def save(self, image_id: str) -> Iterator[IO[bytes]]:
        response = self._get(f"/images/{quote(image_id, safe=':')}/get")
        if response.status != 200:
            raise self._refusal(response, f"did not save {image_id}")
        try:
            yield response
        finally:
            response.close()


class Podman:
    def __init__(self, command: str = "podman") -> None:
        self.command = command
        self.label = "podman"

    def inspect(self, name: str) -> EngineImage:
        try:
            result = subprocess.run([self.command, "image", "inspect", "--format", "json", "--", name],
                                    capture_output=True, text=True, timeout=ENGINE_TIMEOUT)
        except OSError as error:
            raise ClientError(f"cannot run {self.command}: {error}") from error
        if result.returncode != 0:
            said = result.stderr.strip().splitlines()
            raise ClientError(f"podman has no image {name}{': ' + said[-1] if said else ''}")
        try:
            (doc,) = json.loads(result.stdout)
        except ValueError as error:
            raise ClientError(f"podman described {name} unreadably") from error
        return _image(doc, name, self.label)

    @contextmanager
    def save(self, image_id: str) -> Iterator[IO[bytes]]:
        with tempfile.TemporaryFile() as errors:  # a file, not a pipe: nobody reads it until the end
            process = subprocess.Popen([self.command, "image", "save", "--format", "docker-archive", image_id],
                                       stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
            assert process.stdout is not None
            try:
                yield process.stdout
                while process.stdout.read(BLOCK):
                    pass  # the padding after the tar's end, so that podman finishes its write
            except BaseException:
                process.kill()  # the rest of the stream is not wanted
                raise
            finally:
                process.stdout.close()
                process.wait()
            if process.returncode != 0:
                errors.seek(0)
                said = errors.read().decode(errors="replace").strip().splitlines()
                raise ClientError(f"podman did not save {image_id}{': ' + said[-1] if said else ''}")
