"""Pulling an image into an OCI layout: manifests and blobs, each checked against its digest;
blobs the layout holds already are not fetched again."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from berth.client.content import BLOCK
from berth.client.errors import ClientError
from berth.client.layout import LayoutWriter
from berth.client.manifests import Descriptor, walk
from berth.client.progress import Progress
from berth.client.registry import Repository
from berth.client.tasks import DEFAULT_PARALLEL, gather


def pull(source: Repository, reference: str, layout: Path, tag: str | None = None, *,
         parallel: int = DEFAULT_PARALLEL, progress: Progress | None = None) -> str:
    """Copy the image `reference` (a tag or digest) names in `source`, with every child of an
    index, into the OCI layout at `layout` (created if missing), listed in its index.json under
    `tag` if given. Returns the root manifest's digest."""
    progress = progress or Progress()
    root = source.get_manifest(reference)
    plan = walk(root, lambda child: source.get_manifest(child.digest))
    writer = LayoutWriter(layout)
    with ThreadPoolExecutor(parallel, "berth-pull") as pool:
        gather([pool.submit(_fetch, source, writer, blob, progress) for blob in plan.blobs])
    for manifest in plan.manifests:
        writer.add_manifest(manifest)
    writer.name(root.descriptor, tag)
    return root.digest


def _fetch(source: Repository, writer: LayoutWriter, blob: Descriptor, progress: Progress) -> None:
    meter = progress.meter(blob.digest, blob.size)
    if writer.has(blob):
        meter.close("exists")
        return
    algorithm, _, expected = blob.digest.partition(":")
    if algorithm not in hashlib.algorithms_available:
        raise ClientError(f"cannot check digest {blob.digest}")
    hasher = hashlib.new(algorithm)
    path = writer.blob_path(blob.digest)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    size = 0
    try:
        with source.open_blob(blob.digest) as stream, partial.open("wb") as out:
            while block := stream.read(BLOCK):
                hasher.update(block)
                out.write(block)
                size += len(block)
                meter.advance(len(block))
        if size != blob.size or hasher.hexdigest() != expected:
            got = f"{algorithm}:{hasher.hexdigest()}"
            raise ClientError(f"blob {blob.digest} arrived as {size} bytes with digest {got}")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    meter.close("pulled")
