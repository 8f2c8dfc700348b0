"""Content and request helpers for the OCI conformance-workflow tests.

Builders make blobs (random bytes), image configs, image manifests and image indexes, each
carrying its exact bytes and computed sha256 digest, so a test can push them and check what
comes back. The request helpers drive the `client` fixture the way a registry client would:
they follow the `Location` the registry hands out (absolute or relative, keeping any query
parameters it put there) instead of building upload URLs themselves.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from tests.helpers import digest_of, start_upload

# ---- media types ---------------------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY_JSON_TYPE = "application/vnd.oci.empty.v1+json"
OCTET_STREAM = "application/octet-stream"

# The OCI "empty descriptor" content and its well-known digest.
EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

# Every error code the OCI Distribution Spec v1.1 allows in a 4xx JSON body (spec.md, "Error Codes").
SPEC_ERROR_CODES = frozenset({
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
    "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS",
})

# A digest no test ever pushes content for.
ABSENT_DIGEST = "sha256:" + hashlib.sha256(b"nothing was ever pushed with these bytes").hexdigest()


# ---- content -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str = OCI_LAYER

    @property
    def digest(self) -> str:
        return digest_of(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}

    def split(self, at: int) -> tuple[bytes, bytes]:
        return self.data[:at], self.data[at:]


def random_blob(size: int, media_type: str = OCI_LAYER) -> Blob:
    return Blob(os.urandom(size), media_type)


def empty_json_blob(media_type: str = EMPTY_JSON_TYPE) -> Blob:
    return Blob(EMPTY_JSON, media_type)


def image_config() -> Blob:
    """A small image config; a random author makes its digest unique per call."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "author": secrets.token_hex(8),
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    return Blob(json.dumps(config, indent="  ").encode(), OCI_CONFIG)


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as it will be pushed."""

    body: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return digest_of(self.body)

    @property
    def size(self) -> int:
        return len(self.body)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.body)


def _serialise(doc: dict[str, Any], indent: str | None) -> bytes:
    return json.dumps(doc, indent=indent, ensure_ascii=False).encode("utf-8")


def image_manifest(config: Blob, layers: list[Blob] | None = None, *, artifact_type: str | None = None,
                   subject: Manifest | None = None, annotations: dict[str, str] | None = None,
                   declare_media_type: bool = True, embed_config_data: bool = False,
                   indent: str | None = "\t") -> Manifest:
    """An OCI image manifest. `embed_config_data` adds the config bytes as a descriptor `data`
    field plus a field the spec does not define, both of which a registry must tolerate."""
    config_descriptor = config.descriptor()
    if embed_config_data:
        config_descriptor["data"] = base64.b64encode(config.data).decode("ascii")
        config_descriptor["org.example.unspecified"] = base64.b64encode(b"anything at all").decode("ascii")
    doc: dict[str, Any] = {"schemaVersion": 2}
    if declare_media_type:
        doc["mediaType"] = OCI_MANIFEST
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["config"] = config_descriptor
    doc["layers"] = [layer.descriptor() for layer in (layers or [])]
    if subject is not None:
        doc["subject"] = subject.descriptor()
    if annotations is not None:
        doc["annotations"] = annotations
    return Manifest(_serialise(doc, indent), OCI_MANIFEST)


def image_index(manifests: list[Manifest], *, artifact_type: str | None = None, subject: Manifest | None = None,
                annotations: dict[str, str] | None = None, indent: str | None = "\t") -> Manifest:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX}
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["manifests"] = [m.descriptor() for m in manifests]
    if subject is not None:
        doc["subject"] = subject.descriptor()
    if annotations is not None:
        doc["annotations"] = annotations
    return Manifest(_serialise(doc, indent), OCI_INDEX)


# ---- requests ------------------------------------------------------------------------------

def relative(location: str) -> str:
    """The path and query of a Location, which the spec allows to be absolute or relative."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_query(location: str, **params: str) -> str:
    """Add query parameters to a registry-issued URL, keeping the ones it already carries."""
    target = relative(location)
    return target + ("&" if "?" in target else "?") + urlencode(params)


def content_range(start: int, chunk: bytes) -> str:
    return f"{start}-{start + len(chunk) - 1}"


def push_blob(client: Any, repo: str, blob: Blob) -> Any:
    """POST then PUT (monolithic); returns the PUT response after checking it is a 2xx."""
    location = start_upload(client, repo)
    response = client.put(with_query(location, digest=blob.digest), body=blob.data,
                          headers={"Content-Type": OCTET_STREAM, "Content-Length": str(blob.size)})
    assert 200 <= response.status < 300, (response.status, response.body)
    return response


def push_manifest(client: Any, repo: str, reference: str, manifest: Manifest,
                  content_type: str | None = None) -> Any:
    return client.put(f"/v2/{repo}/manifests/{reference}", body=manifest.body,
                      headers={"Content-Type": content_type or manifest.media_type})


@dataclass
class Fetched:
    """A blob GET after following any redirect, as an HTTP client following redirects sees it."""

    status: int
    body: bytes
    headers: dict[str, str]
    redirected_to: str | None


def fetch(client: Any, path: str, headers: dict[str, str] | None = None) -> Fetched:
    """GET `path`, following one redirect: to a presigned S3 URL (moto serves it in-process
    through `requests`) or back into the registry."""
    response = client.get(path, headers=headers or {})
    if response.status not in (301, 302, 303, 307, 308):
        return Fetched(response.status, response.body, dict(response.headers), None)
    target = response.header("Location")
    assert target, "a redirect must carry Location"
    if target.startswith(("http://", "https://")):
        followed = requests.get(target, headers=headers or {}, timeout=30)
        return Fetched(followed.status_code, followed.content, dict(followed.headers), target)
    again = client.get(relative(target), headers=headers or {})
    return Fetched(again.status, again.body, dict(again.headers), target)


def error_codes(response: Any) -> list[str]:
    """The codes of an OCI error body, checking its shape on the way."""
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"], body
    codes = []
    for error in body["errors"]:
        assert isinstance(error, dict) and isinstance(error.get("code"), str), error
        assert re.fullmatch(r"[A-Z_]+", error["code"]), f"code must be uppercase letters and underscores: {error}"
        if "message" in error:
            assert isinstance(error["message"], str), error
        codes.append(error["code"])
    return codes


def assert_oci_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the spec's error: status, JSON body, a code from its table. Returns
    the first error."""
    assert response.status == status, (response.status, response.body)
    assert response.header("Content-Type") == "application/json"
    assert response.header("Docker-Distribution-API-Version") == "registry/2.0"
    codes = error_codes(response)
    if status < 500:  # the spec's table binds 4xx answers
        assert codes[0] in SPEC_ERROR_CODES, f"{codes[0]} is not an error code of the OCI spec's table"
    if code is not None:
        assert code in codes, (code, codes)
    first: dict[str, Any] = response.json()["errors"][0]
    return first
