"""Pushing an image: every blob (several at once), then the manifests, children before the
index that names them, the root last under its tag."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from berth.client.blobs import BlobPusher
from berth.client.manifests import walk
from berth.client.progress import Progress
from berth.client.registry import Repository
from berth.client.remote import RegistrySource
from berth.client.resume import ResumeStore
from berth.client.saved import SavedImage
from berth.client.sources import Source
from berth.client.tasks import DEFAULT_PARALLEL, gather


def push(source: Source | SavedImage, destination: Repository, tag: str | None = None, *,
         parallel: int = DEFAULT_PARALLEL, progress: Progress | None = None, resume: ResumeStore | None = None) -> str:
    """Push the source's image (with an index, all its children) to `destination` and name it
    `tag` (None: by digest only). `parallel` blobs go at once, and as many direct-upload parts;
    `resume` keeps unfinished uploads so the same push run again continues them. Returns the
    digest of the root manifest."""
    if isinstance(source, SavedImage):
        return source.push(destination, tag, parallel=parallel, progress=progress, resume=resume)
    plan = walk(source.root(), source.manifest)
    if isinstance(source, RegistrySource) and source.repo.client.host == destination.client.host:
        for blob in plan.blobs:  # a copy within one registry: mount rather than send
            destination.client.remember(blob.digest, source.repo.name)
    stop = threading.Event()
    with ThreadPoolExecutor(parallel, "berth-part") as parts, ThreadPoolExecutor(parallel, "berth-blob") as blobs:
        pusher = BlobPusher(destination, parts, progress=progress, resume=resume, stop=stop)
        # On failure or Ctrl-C, uploads under way stop at their next part or chunk; resume picks them up.
        gather([blobs.submit(pusher.push, blob, source.blob(blob)) for blob in plan.blobs], stop)
    for manifest in plan.manifests[:-1]:
        destination.put_manifest(manifest.digest, manifest)
    return destination.put_manifest(tag or plan.root.digest, plan.root)
