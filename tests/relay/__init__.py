"""`berth relay` as its own process in front of the local mode, a tap that counts the bytes
the relay sends the upstream, and images with a layer too large for one request."""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Descriptor, Layout, sha256
from tests.local import free_port, running

MiB = 1024 * 1024
CHUNK_MAX = 4_456_448  # the most one request to the upstream may carry


@dataclass
class RelayProcess:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def peak_rss(self) -> int:
        """The most memory (resident set) the relay has held so far, in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024


@contextmanager
def relay_process(workdir: Path, upstream: str, spool: Path, *args: str) -> Iterator[RelayProcess]:
    """`berth relay` on a free port, up once `GET /v2/` gets the upstream's answer through it;
    on exit it must stop cleanly on Ctrl-C and leave `spool` empty."""
    port = free_port()
    log_path = workdir / "berth-relay.log"
    command = [sys.executable, "-m", "berth.cli", "relay", "--listen", f"127.0.0.1:{port}",
               "--upstream", f"http://{upstream}", "--spool", str(spool), *args]
    with running(command, port, log_path, "the relay") as process:
        yield RelayProcess(port, process, log_path)
    assert list(spool.iterdir()) == [], "the relay left files in its spool"


class Tap:
    """A TCP proxy to 127.0.0.1:`port` that counts the bytes passing each way: whatever goes
    to the upstream through it, the upstream receives."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.sent = self.received = 0  # towards the target, and back
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target))
                threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
                threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, towards_target: bool) -> None:
        with suppress(OSError):
            while block := source.recv(MiB):
                with self._lock:
                    if towards_target:
                        self.sent += len(block)
                    else:
                        self.received += len(block)
                sink.sendall(block)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()


def big_layer(size: int) -> tuple[bytes, str]:
    """A gzip tar holding `size` random bytes, and its diff ID. Stored rather than compressed:
    random bytes do not compress, and deflating 200 MiB would take seconds."""
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"data/{os.urandom(4).hex()}.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return gzip.compress(plain.getvalue(), compresslevel=0, mtime=0), sha256(plain.getvalue())


def image(layout: Layout, layers: list[tuple[bytes, str]]) -> Descriptor:
    """An image of the given layers (blob, diff ID), tagged `1` in the layout."""
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
              "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in layers]}}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": layout.add_blob(json.dumps(config).encode(), OCI_CONFIG),
                "layers": [layout.add_blob(blob, OCI_LAYER) for blob, _ in layers]}
    descriptor = layout.add_blob(json.dumps(manifest).encode(), OCI_MANIFEST)
    layout.tag(descriptor, "1")
    return descriptor
