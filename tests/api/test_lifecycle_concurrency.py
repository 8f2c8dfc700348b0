"""The collector running in a thread while other threads push (and delete) images that share
layers. Its clock runs ahead, so every blob is collectible the moment it is pushed: each push
races the collector between its blobs and its manifest, the race the design must survive."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib.digest.digests import Digest
from chalicelib.errors import Oci, RegistryError
from chalicelib.lifecycle.jobs import never
from chalicelib.manifests import mediatypes as mt
from chalicelib.uploads.state import UploadState
from tests.api.lifecycle_support import Lab
from tests.helpers import digest_of, manifest_body

PUSHERS, IMAGES = 4, 6
SHARED = [b"{}", b"base layer 0", b"base layer 1"]


@pytest.fixture
def lab(registry: Any, aws: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> Lab:
    lab = Lab(registry, aws, client, monkeypatch)
    lab.configure(threads=True, gc_grace_hours=0)
    lab.clock.later(1 / 360)  # 10 s ahead: anything just pushed is already past the grace period
    return lab


class Pusher:
    def __init__(self, lab: Lab, index: int) -> None:
        self.lab, self.index = lab, index
        self.kept: list[tuple[str, str, bytes]] = []  # repo, tag, manifest
        self.refused = 0  # manifest pushes the collector beat

    def push_blobs(self, repo: str, blobs: list[bytes]) -> None:
        uploads, meta = self.lab.registry.uploads, self.lab.registry.meta
        for blob in blobs:
            digest = digest_of(blob)
            if meta.get_link(repo, digest) is not None:
                continue  # HEAD says it is there: clients skip it
            if repo != "shared/app" and uploads.mount(repo, Digest.parse(digest), "shared/app"):
                continue
            uploads.finish(UploadState.new(repo, None), Digest.parse(digest), blob, persisted=False)

    def push_image(self, repo: str, tag: str, layers: list[bytes]) -> bytes:
        body = manifest_body(digest_of(SHARED[0]), [(digest_of(layer), len(layer)) for layer in layers])
        for _ in range(100):
            self.push_blobs(repo, [SHARED[0], *layers])
            try:
                self.lab.registry.manifests.put(repo, tag, body, mt.OCI_MANIFEST)
                return body
            except RegistryError as error:
                if error.kind is not Oci.MANIFEST_BLOB_UNKNOWN:
                    raise
                self.refused += 1  # what a client sees: push the blobs again, then the manifest
        raise AssertionError("the collector starved a push")

    def run(self) -> None:
        for k in range(IMAGES):
            repo = "shared/app" if k % 2 else f"own/{self.index}"
            tag = f"p{self.index}-{k}"
            body = self.push_image(repo, tag, [*SHARED[1:], f"pusher {self.index} image {k}".encode()])
            self.kept.append((repo, tag, body))
            if k >= 2:  # delete an older image of ours: its own layer becomes garbage
                old_repo, _, old_body = self.kept.pop(0)
                self.lab.registry.manifests.delete(old_repo, digest_of(old_body))


def test_collection_during_pushes_of_images_sharing_layers_loses_nothing(lab: Lab) -> None:
    pushers = [Pusher(lab, i) for i in range(PUSHERS)]
    done, failures, freed = threading.Event(), [], []

    def collect() -> None:
        while not done.is_set():
            freed.append(lab.collector(page_size=25).run(never).blobs)

    def push(pusher: Pusher) -> None:
        try:
            pusher.run()
        except Exception as error:  # reported below, with the others' results
            failures.append(error)

    collector = threading.Thread(target=collect)
    collector.start()
    threads = [threading.Thread(target=push, args=(p,)) for p in pushers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    collector.join()
    assert failures == []
    lab.collect()  # the last word: everything unreferenced goes

    # Every image still pushed pulls back, digest-exact.
    kept = [image for pusher in pushers for image in pusher.kept]
    assert len(kept) == PUSHERS * 2
    for repo, tag, body in kept:
        lab.pulls_exactly(repo, tag, body)
    # Each blob is counted exactly by the manifests that reference it, none unreferenced is
    # left, and storage holds exactly the blobs' objects.
    lab.assert_consistent()
    records = lab.blob_items()
    assert all(r["refs"] > 0 for r in records)
    assert not any("doomed" in r for r in records)
    assert sorted(lab.objects()) == sorted(r["key"] for r in records)
    assert sum(freed) > 0  # the collector did work while the pushes ran
