"""OCI image layouts (a directory with `oci-layout`, `index.json` and `blobs/<alg>/<hex>`):
read one, as a directory or as a tar of one, as a push source; write one as a pull
destination."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from berth.client.content import Content, FileRange
from berth.client.errors import ClientError
from berth.client.manifests import OCI_INDEX, Descriptor, Manifest
from berth.client.tarfiles import TarFiles, read_all

REF_NAME = "org.opencontainers.image.ref.name"
_DIGEST = re.compile(r"^([a-z0-9]+):([a-f0-9]{32,128})\Z")


def blob_name(digest: str) -> str:
    """Where a layout keeps a blob, relative to its root."""
    match = _DIGEST.match(digest)
    if not match:  # also keeps a hostile descriptor from naming a path outside the layout
        raise ClientError(f"unsupported digest {digest!r}")
    return f"blobs/{match[1]}/{match[2]}"


def blob_path(root: Path, digest: str) -> Path:
    return root / blob_name(digest)


def _parse_index(data: bytes, where: str) -> dict[str, Any]:
    try:
        index = json.loads(data)
    except ValueError as error:
        raise ClientError(f"{where}/index.json is not JSON") from error
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ClientError(f"{where}/index.json lists no manifests")
    return index


def _read_index(root: Path) -> dict[str, Any]:
    try:
        return _parse_index((root / "index.json").read_bytes(), str(root))
    except FileNotFoundError:
        raise ClientError(f"{root} is not an OCI image layout (no index.json)") from None


class _LayoutReader:
    """The image `tag` names in a layout's index.json (its `org.opencontainers.image.ref.name`),
    or the only image there when no tag is given. Subclasses say where the layout's files are."""

    kind = ""  # the source prefix that names this kind of layout

    def __init__(self, where: str, tag: str | None) -> None:
        self._where = where
        index = self._file("index.json")
        if index is None:
            raise ClientError(f"{where} is not an OCI image layout (no index.json)")
        entries = _parse_index(read_all(index), where)["manifests"]
        if tag is not None:
            chosen = [e for e in entries if e.get("annotations", {}).get(REF_NAME) == tag]
            if not chosen:
                raise ClientError(f"{where} has no image tagged {tag!r} (tags: {', '.join(_tags(entries)) or 'none'})")
        elif len(entries) == 1:
            chosen = entries
        else:
            raise ClientError(f"{where} holds {len(entries)} images: name one as {self.kind}:{where}:TAG "
                              f"(tags: {', '.join(_tags(entries)) or 'none'})")
        entry = chosen[-1]  # a layout may list a tag twice: the later entry wins
        self.tag: str | None = tag or entry.get("annotations", {}).get(REF_NAME)
        self._root = self.manifest(Descriptor.from_json(entry))

    def _file(self, name: str) -> FileRange | None:
        """A file of the layout by its path in the layout; None when it is not there."""
        raise NotImplementedError

    def root(self) -> Manifest:
        return self._root

    def manifest(self, descriptor: Descriptor) -> Manifest:
        return Manifest.of(read_all(self._existing(descriptor)), descriptor.media_type)

    def blob(self, descriptor: Descriptor) -> Content:
        return self._existing(descriptor)

    def _existing(self, descriptor: Descriptor) -> FileRange:
        found = self._file(blob_name(descriptor.digest))
        if found is None:
            raise ClientError(f"{self._where} lacks blob {descriptor.digest}")
        if found.size != descriptor.size:
            raise ClientError(f"{self._where}: blob {descriptor.digest} holds {found.size} bytes, its descriptor "
                              f"says {descriptor.size}")
        return found


class LayoutSource(_LayoutReader):
    """An OCI layout directory."""

    kind = "oci"

    def __init__(self, root: Path, tag: str | None = None) -> None:
        self.root_dir = root
        super().__init__(str(root), tag)

    def _file(self, name: str) -> FileRange | None:
        path = self.root_dir / name
        return FileRange(path) if path.is_file() else None


class OciArchiveSource(_LayoutReader):
    """An OCI layout in an uncompressed tar (`skopeo copy ... oci-archive:FILE`, `podman save
    --format oci-archive`), read in place: nothing is extracted."""

    kind = "oci-archive"

    def __init__(self, path: Path, tag: str | None = None) -> None:
        self.path = path
        self._files = TarFiles(path)
        super().__init__(str(path), tag)

    def _file(self, name: str) -> FileRange | None:
        return self._files.range(name) if self._files.has(name) else None


def _tags(entries: list[dict[str, Any]]) -> list[str]:
    return [str(e["annotations"][REF_NAME]) for e in entries if REF_NAME in e.get("annotations", {})]


class LayoutWriter:
    """A layout being filled: created if missing, added to if there."""

    def __init__(self, root: Path) -> None:
        self.root_dir = root
        root.mkdir(parents=True, exist_ok=True)
        if not (root / "oci-layout").exists():
            (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        if not (root / "index.json").exists():
            self._write_index({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})

    def blob_path(self, digest: str) -> Path:
        path = blob_path(self.root_dir, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def has(self, descriptor: Descriptor) -> bool:
        path = blob_path(self.root_dir, descriptor.digest)
        return path.is_file() and path.stat().st_size == descriptor.size

    def add_manifest(self, manifest: Manifest) -> None:
        self.blob_path(manifest.digest).write_bytes(manifest.data)

    def name(self, descriptor: Descriptor, tag: str | None) -> None:
        """List the manifest in index.json, under `tag` if given (replacing what had it)."""
        index = _read_index(self.root_dir)
        entry: dict[str, Any] = descriptor.to_json()
        if tag:
            entry["annotations"] = {REF_NAME: tag}
            index["manifests"] = [e for e in index["manifests"] if e.get("annotations", {}).get(REF_NAME) != tag]
        elif any(e.get("digest") == descriptor.digest for e in index["manifests"]):
            return
        index["manifests"].append(entry)
        self._write_index(index)

    def _write_index(self, index: dict[str, Any]) -> None:
        temporary = self.root_dir / f"index.json.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(index, indent=2))
        temporary.replace(self.root_dir / "index.json")
