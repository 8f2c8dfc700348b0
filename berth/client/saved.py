"""Pushing an image straight out of a local engine (berth.client.engines), as in `docker build -t
app . && berth push docker-daemon:app registry.example.com/team/app:1`: no `docker save` file in
between, and never a layer in memory.

The engine saves the image as a `docker save` tar stream, and it becomes a Docker v2 schema 2
manifest exactly as a `docker-archive:` source does (berth.client.archive): layers as stored,
neither extracted nor recompressed. Reading and pushing overlap: a layer goes to a spool file as
it streams past, hashed on the way (from a file, a large layer goes to S3 in parallel parts and a
failed part is sent again), is pushed while the stream goes on, and its file goes once the
registry has it; at most `parallel` such files wait at once.

What the registry already has is not read where the engine allows it. When the registry holds the
config and every layer (by the diff IDs the engine reports: engines save layers uncompressed),
the image is not saved at all: the manifest comes from the engine's description and the
registry's sizes. Otherwise, a layer whose name in the stream carries its digest (podman's
`<digest>.tar`, Docker 25's `blobs/sha256/<digest>`) is passed over unread when the registry has
it; Docker 20.10 names layers by other IDs, so its layers are hashed until every missing one has
been found, and the rest passed over (the stream's manifest.json lists layers in diff ID order).
Blobs the engine does not describe by diff ID (Docker's containerd image store saves layers
compressed) wait on disk until the stream's end says which of them the image uses."""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import tarfile
import tempfile
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from berth.client.archive import DOCKER_CONFIG, DOCKER_LAYER, choose_image, docker_manifest, entry_files, layer_type
from berth.client.blobs import BlobPusher
from berth.client.content import BLOCK, FileRange
from berth.client.engines import Engine, EngineImage
from berth.client.errors import ClientError
from berth.client.manifests import Descriptor, Manifest
from berth.client.progress import Progress
from berth.client.registry import Repository
from berth.client.resume import ResumeStore
from berth.client.tarfiles import follow_links, normal
from berth.client.tasks import DEFAULT_PARALLEL, WAKE_SECONDS, gather

MAX_MANIFEST_JSON = 16 * 1024 * 1024
BLOB_TYPE = "application/octet-stream"  # what a blob is to the upload API
# Stream members named by their digest: `<hex>.tar`, `<hex>.json`, `blobs/sha256/<hex>`.
_NAMED = re.compile(r"(?:^|/)([0-9a-f]{64})(?:\.tar|\.json)?\Z")


@dataclass(frozen=True)
class _Blob:
    """A file of the stream that may be a config or a layer."""

    digest: str | None  # None: passed over unhashed (a layer the registry has, placed by diff ID later)
    size: int
    magic: bytes  # its first bytes, which tell a layer's compression
    path: Path | None = None  # where it waits on disk, while it does

    def descriptor(self, media_type: str) -> Descriptor:
        assert self.digest is not None
        return Descriptor(media_type, self.digest, self.size)


def image_tag(name: str) -> str | None:
    """The tag in an engine's image name (`app:1`, `localhost:5000/app:1`), if any."""
    if "@" in name or name.startswith("sha256:"):
        return None
    return name.rpartition("/")[2].partition(":")[2] or None


class SavedImage:
    """An image in a local engine, pushed as the engine saves it."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name = engine, name
        self.image = engine.inspect(name)
        self.tag = image_tag(name)

    def push(self, destination: Repository, tag: str | None, *, parallel: int = DEFAULT_PARALLEL,
             progress: Progress | None = None, resume: ResumeStore | None = None) -> str:
        """Push the image to `destination` as `tag` (None: by digest only); returns its digest."""
        image = self.image
        present = {}
        for digest in dict.fromkeys((image.id, *image.diff_ids)):
            size = destination.blob_size(digest)
            if size is not None:
                present[digest] = size
        if len(present) == len(set((image.id, *image.diff_ids))):
            manifest = docker_manifest(Descriptor(DOCKER_CONFIG, image.id, present[image.id]),
                                       [Descriptor(DOCKER_LAYER, d, present[d]) for d in image.diff_ids])
        else:
            manifest = self._stream(destination, present, parallel, progress, resume)
        return destination.put_manifest(tag or manifest.digest, manifest)

    def _stream(self, destination: Repository, present: dict[str, int], parallel: int, progress: Progress | None,
                resume: ResumeStore | None) -> Manifest:
        stop = threading.Event()
        with (tempfile.TemporaryDirectory(prefix="berth-push-") as spool,
              ThreadPoolExecutor(parallel, "berth-part") as parts,
              ThreadPoolExecutor(parallel, "berth-blob") as blobs):
            pusher = BlobPusher(destination, parts, progress=progress, resume=resume, stop=stop)
            reader = _StreamReader(self.image, present, Path(spool), pusher, blobs, parallel, stop)
            try:
                with self.engine.save(self.image.id) as stream:
                    reader.read(stream, self.engine.label)
                return reader.finish(self.engine.label)
            except BaseException:
                stop.set()  # uploads under way give up at their next part; resume picks them up
                raise


class _StreamReader:
    def __init__(self, image: EngineImage, present: dict[str, int], spool: Path, pusher: BlobPusher,
                 executor: Executor, parallel: int, stop: threading.Event) -> None:
        self.image, self.present, self.spool = image, present, spool
        self.pusher, self.executor, self.stop = pusher, executor, stop
        self.missing_layers = {d for d in image.diff_ids if d not in present}
        self.waiting = threading.BoundedSemaphore(parallel)  # spool files being written or pushed
        self.pushes: dict[str, Future[str]] = {}
        self.members: dict[str, tarfile.TarInfo] = {}
        self.blobs: dict[str, _Blob] = {}  # by member name
        self.manifest_json: bytes | None = None

    def read(self, stream: IO[bytes], label: str) -> None:
        try:
            with tarfile.open(fileobj=stream, mode="r|", bufsize=BLOCK) as tar:
                for member in tar:
                    self._check()
                    name = normal(member.name)
                    self.members[name] = member
                    if member.isreg():
                        self._take(tar, member, name, label)
        except tarfile.TarError as error:
            raise ClientError(f"{label} saved {self.image.id} as something other than a tar: {error}") from error

    def _take(self, tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, label: str) -> None:
        source = tar.extractfile(member)
        assert source is not None
        if name == "manifest.json":
            self.manifest_json = source.read(MAX_MANIFEST_JSON + 1)
            if len(self.manifest_json) > MAX_MANIFEST_JSON:
                raise ClientError(f"{label} saved a manifest.json of more than {MAX_MANIFEST_JSON} bytes")
            return
        found = _NAMED.search(name)
        if found is None and posixpath.basename(name) != "layer.tar":
            return  # VERSION, json, repositories, index.json, oci-layout: nothing to push
        named = f"sha256:{found.group(1)}" if found else None
        if named in self.present or (named is None and not self.missing_layers):
            # The registry has it, or (a layer the name says nothing of) has every layer still
            # to be found: only the first bytes, for the media type; tarfile passes the rest over.
            self.blobs[name] = _Blob(named, self.present.get(named or "", member.size), source.read(4))
            return
        self._acquire()
        blob = self._spooled(source, member, name, label)
        if named is not None and blob.digest != named:
            self.waiting.release()
            raise ClientError(f"{label}: {name} holds {blob.digest}")
        self.blobs[name] = blob
        if blob.digest in self.present or blob.digest in self.pushes:
            self._drop(blob, True)
        elif blob.digest in self.missing_layers or blob.digest == self.image.id:
            self.missing_layers.discard(blob.digest or "")
            self._start(blob, True)
        else:
            self.waiting.release()  # waits for the stream's end, which says whether the image uses it

    def _spooled(self, source: IO[bytes], member: tarfile.TarInfo, name: str, label: str) -> _Blob:
        path = self.spool / str(len(self.blobs))
        digest, magic, size = hashlib.sha256(), b"", 0
        try:
            with path.open("wb") as out:
                while block := source.read(BLOCK):
                    if self.stop.is_set():
                        raise ClientError("stopped")
                    magic = magic or block[:4]
                    digest.update(block)
                    out.write(block)
                    size += len(block)
        except BaseException:
            path.unlink(missing_ok=True)
            self.waiting.release()
            raise
        if size != member.size:
            path.unlink(missing_ok=True)
            self.waiting.release()
            raise ClientError(f"{label}: the stream ended within {name}")
        return _Blob("sha256:" + digest.hexdigest(), size, magic, path)

    def _acquire(self) -> None:
        while not self.waiting.acquire(timeout=WAKE_SECONDS):
            self._check()

    def _check(self) -> None:
        """A push that failed stops the reading."""
        for future in self.pushes.values():
            if future.done() and future.exception() is not None:
                future.result()

    def _start(self, blob: _Blob, holds_place: bool) -> None:
        assert blob.digest is not None
        self.pushes[blob.digest] = self.executor.submit(self._push, blob, holds_place)

    def _push(self, blob: _Blob, holds_place: bool) -> str:
        assert blob.path is not None
        try:
            return self.pusher.push(blob.descriptor(BLOB_TYPE), FileRange(blob.path))
        finally:
            self._drop(blob, holds_place)

    def _drop(self, blob: _Blob, holds_place: bool) -> None:
        if blob.path is not None:
            blob.path.unlink(missing_ok=True)
        if holds_place:
            self.waiting.release()

    def finish(self, label: str) -> Manifest:
        """The image's manifest, once every blob it uses is in the registry."""
        if self.manifest_json is None:
            raise ClientError(f"{label} saved {self.image.id} without a manifest.json")
        try:
            entries = json.loads(self.manifest_json)
        except ValueError as error:
            raise ClientError(f"{label} saved a manifest.json that is not JSON") from error
        entry, _ = choose_image(entries, None, label)
        config_name, layer_names = entry_files(entry, label)
        config = self._blob(config_name, label)
        if config.digest != self.image.id:
            raise ClientError(f"{label} saved another image than {self.image.id}: was it replaced meanwhile?")
        layers = [self._placed(self._blob(name, label), index, len(layer_names), label)
                  for index, name in enumerate(layer_names)]
        for blob in (config, *layers):
            if blob.digest not in self.present and blob.digest not in self.pushes:
                self._start(blob, False)
        gather(list(self.pushes.values()), self.stop)
        return docker_manifest(config.descriptor(DOCKER_CONFIG), [
            blob.descriptor(layer_type(blob.magic, name)) for blob, name in zip(layers, layer_names, strict=True)])

    def _blob(self, name: str, label: str) -> _Blob:
        member = follow_links(self.members, name, label)
        blob = self.blobs.get(normal(member.name))
        if blob is None:
            raise ClientError(f"{label}: {name} is neither a config nor a layer")
        return blob

    def _placed(self, blob: _Blob, index: int, count: int, label: str) -> _Blob:
        """A layer passed over unhashed is the one whose diff ID is at its place in the list."""
        if blob.digest is not None:
            return blob
        diff_ids = self.image.diff_ids
        if count != len(diff_ids) or diff_ids[index] not in self.present:
            raise ClientError(f"{label}: the layers saved do not match the {len(diff_ids)} the image has")
        return replace(blob, digest=diff_ids[index], size=self.present[diff_ids[index]])
