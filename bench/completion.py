"""`python -m bench.completion`: the work an upload's finish does inside the API's 29 s that
grows with the blob, measured on moto as the local mode runs it (docs/performance.md).

A finish (chunked or direct) ends with `BlobStore.complete_multipart`: ListParts (1,000 parts
a page) and CompleteMultipartUpload naming every part. A chunked finish first copies its last
piece in with UploadPartCopy; a piece is under 5 MiB, whatever the blob's size. So:

- **by part count** (1 to 10,000, S3's maximum): parts of 1 KiB, with moto's 5 MiB minimum
  lowered for the run (`S3_UPLOAD_PART_MIN_SIZE`), so what grows is the number of parts and
  nothing else: the pages of ListParts, the size of the completion request, moto's work per
  part;
- **by bytes** (parts of 5 MiB, moto's own rules): moto concatenates the parts' bytes on
  completion, so this series shows what a store that copies on completion would cost;
- **UploadPartCopy** of a piece of 1 to 5 MiB.

S3's own time to complete a large object is not on moto: AWS documents that it can take
minutes. Each series runs in a fresh process with a moto server of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).absolute().parents[1]
PART_COUNTS = (1, 10, 100, 1000, 3000, 10_000)
BYTE_PARTS = (1, 4, 16, 64)  # × 5 MiB
PIECE_MIB = (1, 2, 4, 5)
MiB = 1024 * 1024
TINY_PART = 1024


@contextlib.contextmanager
def _store() -> Iterator[Any]:
    """The registry's BlobStore on a moto server of this process's own, with a bucket."""
    from moto.server import ThreadedMotoServer

    from chalicelib.storage.clients import AwsClients
    from chalicelib.storage.s3 import BlobStore

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
        clients = AwsClients("us-east-1")
        clients.s3.create_bucket(Bucket="completion")
        yield BlobStore(clients, "completion", 900)
    finally:
        server.stop()


def _upload(store: Any, key: str, parts: int, size: int) -> str:
    upload = store.start_multipart(key)
    body = os.urandom(size)
    for number in range(1, parts + 1):
        store.upload_part(key, upload, number, body)
    return str(upload)


def _complete(store: Any, key: str, upload: str, parts: int) -> float:
    started = time.perf_counter()
    store.complete_multipart(key, upload, list(range(1, parts + 1)))
    return time.perf_counter() - started


def by_part_count() -> list[dict[str, float]]:
    with _store() as store:
        return [{"parts": count, "seconds": _complete(store, f"count-{count}",
                                                      _upload(store, f"count-{count}", count, TINY_PART), count)}
                for count in PART_COUNTS]


def by_bytes() -> list[dict[str, float]]:
    rows = []
    with _store() as store:
        for count in BYTE_PARTS:
            upload = _upload(store, f"bytes-{count}", count, 5 * MiB)
            rows.append({"parts": count, "mib": count * 5, "seconds": _complete(store, f"bytes-{count}", upload,
                                                                                 count)})
            store.delete([f"bytes-{count}"])  # moto keeps objects in memory: one at a time
    return rows


def piece_copies() -> list[dict[str, float]]:
    rows = []
    with _store() as store:
        for mib in PIECE_MIB:
            store.put(f"piece-{mib}", os.urandom(mib * MiB))
            upload = store.start_multipart(f"copy-{mib}")
            started = time.perf_counter()
            store.copy_part(f"copy-{mib}", upload, 1, f"piece-{mib}")
            rows.append({"mib": mib, "seconds": time.perf_counter() - started})
            store.abort_multipart(f"copy-{mib}", upload)
    return rows


SERIES = {"by_part_count": by_part_count, "by_bytes": by_bytes, "piece_copies": piece_copies}


def _run(series: str, env: dict[str, str]) -> Any:
    code = f"import json; from bench.completion import SERIES; print(json.dumps(SERIES[{series!r}]()))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=3600)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure() -> dict[str, Any]:
    return {
        "by_part_count": _run("by_part_count", {"S3_UPLOAD_PART_MIN_SIZE": str(TINY_PART)}),
        "by_bytes": _run("by_bytes", {}),
        "piece_copies": _run("piece_copies", {}),
    }


def lines(figures: dict[str, Any]) -> list[str]:
    out = ["complete_multipart (ListParts + CompleteMultipartUpload), by part count (1 KiB parts):"]
    out += [f"  {row['parts']:>6} parts: {row['seconds']:.2f} s" for row in figures["by_part_count"]]
    out.append("the same, by bytes (5 MiB parts; moto copies every byte on completion, S3 need not):")
    out += [f"  {row['parts']:>6} parts, {row['mib']:>4} MiB: {row['seconds']:.2f} s" for row in figures["by_bytes"]]
    out.append("UploadPartCopy of the last piece into the upload:")
    out += [f"  {row['mib']} MiB: {row['seconds']:.3f} s" for row in figures["piece_copies"]]
    return out


if __name__ == "__main__":
    print("\n".join(lines(measure())))
