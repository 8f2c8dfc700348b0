"""The reference registry: Debian's docker-registry (distribution 2.8.2) with its S3 driver
on the bench's moto, in a bucket of its own, on a free port.

Its background work is switched off so that every S3 request in a window is one the push or
pull caused: no upload purging, no storage health checks. The blob descriptor cache is the
in-memory one Debian's default configuration uses; redirects are on, so blob GETs are 307s to
presigned S3 URLs, as with Berth.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.awsbackend import Backend
from bench.listening import free_port
from tests.e2e.distribution import BINARY, docker_registry

BUCKET = "reference-registry"
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")

CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: local
    secretkey: local
    region: us-east-1
    regionendpoint: {endpoint}
    bucket: {bucket}
    secure: false
    v4auth: true
    rootdirectory: /registry
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
  redirect:
    disable: false
http:
  addr: 127.0.0.1:{port}
"""


class Unavailable(Exception):
    """docker-registry is not installed and cannot be (not root)."""


def ensure_installed() -> str:
    """The docker-registry binary, apt-get installing it when absent (needs root). The
    package's service is kept from starting while it installs (it would listen on :5000)."""
    found = shutil.which(BINARY)
    if found:
        return found
    if os.geteuid() != 0:
        raise Unavailable(f"{BINARY} is not installed and installing it needs root: "
                          f"apt-get install docker-registry")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    placed_policy = not POLICY_RC_D.exists()
    if placed_policy:
        POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")  # "action forbidden": no service start
        POLICY_RC_D.chmod(0o755)
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", BINARY],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    finally:
        if placed_policy:
            POLICY_RC_D.unlink()
    found = shutil.which(BINARY)
    if not found:
        raise Unavailable(f"apt-get installed {BINARY} but it is not on PATH")
    return found


@contextmanager
def reference_registry(backend: Backend) -> Iterator[str]:
    """Yields the reference registry's host:port while it runs."""
    binary = ensure_installed()
    backend.create_bucket(BUCKET)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-reference-") as workdir, \
            docker_registry(CONFIG.format(endpoint=backend.endpoint, bucket=BUCKET, port=port), port, Path(workdir),
                            binary):
        yield f"127.0.0.1:{port}"
