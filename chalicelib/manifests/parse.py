"""Parse and check a pushed manifest without touching storage. Pure logic.

What needs storage (are the referenced blobs and child manifests in the repository?) is
returned as lists for the caller to look up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from chalicelib.digest.digests import Digest
from chalicelib.errors import Oci, RegistryError
from chalicelib.manifests import mediatypes as mt

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# Content-Types that say nothing about which manifest this is (some tools send them).
_GENERIC_CONTENT_TYPES = frozenset({"", "application/json", "application/octet-stream"})


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None


@dataclass
class Manifest:
    media_type: str
    blobs: list[Descriptor] = field(default_factory=list)  # config and layers the repo must hold
    children: list[Descriptor] = field(default_factory=list)  # manifests an index points at
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    def referrer_artifact_type(self) -> str | None:
        """The artifactType a referrers listing shows: the manifest's own, else its config's."""
        if self.artifact_type:
            return self.artifact_type
        if self.media_type in mt.IMAGE_MANIFESTS and self.blobs:
            return self.blobs[0].media_type
        return None


def _invalid(message: str, **detail: Any) -> RegistryError:
    return RegistryError(Oci.MANIFEST_INVALID, message, detail=detail or None)


def _unicode(text: str) -> bool:
    """JSON can escape half a surrogate pair ("\\ud800"), which is no Unicode text: it cannot
    be stored or sent as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _artifact_type(value: dict[str, Any], where: str) -> str | None:
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not (isinstance(artifact_type, str) and _unicode(artifact_type)):
        raise _invalid(f"{where}artifactType must be a string")
    return artifact_type


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type or not _unicode(media_type):
        raise _invalid(f"{where}.mediaType must be a non-empty string")
    if not isinstance(digest, str):
        raise _invalid(f"{where}.digest must be a string")
    try:
        parsed = Digest.parse(digest)
    except RegistryError:
        raise _invalid(f"{where}.digest is not a valid digest", digest=digest) from None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _invalid(f"{where}.size must be a non-negative integer")
    return Descriptor(media_type, parsed, size, _artifact_type(value, f"{where}."), _annotations(value, where))


def _annotations(value: dict[str, Any], where: str) -> dict[str, str] | None:
    annotations = value.get("annotations")
    if annotations is None:
        return None
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _unicode(k) and _unicode(v) for k, v in annotations.items()
    ):
        raise _invalid(f"{where}.annotations must map strings to strings")
    return annotations


def _descriptor_list(doc: dict[str, Any], key: str, required: bool) -> list[Descriptor]:
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise _invalid(f"{key} must be a list of descriptors")
    return [_descriptor(item, f"{key}[{i}]") for i, item in enumerate(value)]


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    if len(body) > MAX_MANIFEST_BYTES:
        raise RegistryError(
            Oci.TOO_LARGE, f"manifest is larger than {MAX_MANIFEST_BYTES} bytes", detail={"size": len(body)}
        )
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
        raise _invalid("manifest is not valid UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise _invalid("manifest must be a JSON object")
    declared = doc.get("mediaType")
    header = (content_type or "").split(";")[0].strip().lower()
    if header in _GENERIC_CONTENT_TYPES:
        header = ""
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    if header in mt.DOCKER_SCHEMA1 or declared in mt.DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise RegistryError(
            Oci.MANIFEST_INVALID, "Docker schema 1 manifests are not supported; push schema 2 or OCI"
        )
    if declared and header and declared != header:
        raise _invalid("mediaType in the manifest does not match the Content-Type header",
                       mediaType=declared, contentType=header)
    media_type = declared or header or _infer_media_type(doc)
    if media_type not in mt.MANIFEST_TYPES:
        raise _invalid(f"unsupported manifest media type {media_type!r}", mediaType=media_type)
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")

    manifest = Manifest(media_type=media_type, annotations=_annotations(doc, "manifest"))
    if media_type in mt.IMAGE_MANIFESTS:
        config = _descriptor(doc.get("config"), "config")
        layers = _descriptor_list(doc, "layers", required=True)
        manifest.blobs = [config] + [d for d in layers if d.media_type not in mt.NON_DISTRIBUTABLE]
    else:
        manifest.children = _descriptor_list(doc, "manifests", required=True)
    if media_type in (mt.OCI_MANIFEST, mt.OCI_INDEX):
        manifest.artifact_type = _artifact_type(doc, "")
        if doc.get("subject") is not None:
            manifest.subject = _descriptor(doc["subject"], "subject")
    return manifest


def _infer_media_type(doc: dict[str, Any]) -> str:
    """An OCI manifest may omit mediaType and the client its Content-Type: tell by shape."""
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc:
        return mt.OCI_MANIFEST
    raise _invalid("cannot tell the manifest media type: no mediaType and no Content-Type")
