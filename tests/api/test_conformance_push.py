"""The OCI conformance "Push" workflow: streamed, monolithic and chunked blob uploads,
cross-repository mounts, and manifest uploads (spec.md "Push", "Endpoints", v1.1).

Every upload follows the Location the registry returned, as a client must.
"""

from __future__ import annotations

import re

import pytest

from tests.api.oci_fixtures import (
    ABSENT_DIGEST,
    EMPTY_JSON_DIGEST,
    OCI_MANIFEST,
    OCTET_STREAM,
    Blob,
    assert_oci_error,
    content_range,
    digest_of,
    empty_json_blob,
    fetch,
    image_config,
    image_manifest,
    push_blob,
    push_manifest,
    random_blob,
    relative,
    start_upload,
    with_query,
)

REPO = "conformance/push-workflow"
MOUNT_TARGET = "conformance/crossmount-target"
MIB = 1024 * 1024
# The suite's chunked blob: 42 random bytes split after byte 22.
SMALL_CHUNKED_SIZE = 42


def assert_blob_served(client, repo: str, blob: Blob) -> None:
    head = client.head(f"/v2/{repo}/blobs/{blob.digest}")
    assert head.status == 200, head.status
    assert head.header("Content-Length") == str(blob.size)
    fetched = fetch(client, f"/v2/{repo}/blobs/{blob.digest}")
    assert fetched.status == 200
    assert fetched.body == blob.data


def close_and_check(client, location: str, blob: Blob) -> None:
    """The closing PUT with no body, then the blob as a client pulls it."""
    closed = client.put(with_query(location, digest=blob.digest),
                        headers={"Content-Length": "0", "Content-Type": OCTET_STREAM})
    assert closed.status == 201, closed.body
    assert closed.header("Location")
    assert_blob_served(client, REPO, blob)


def put_chunk(client, location: str, chunk: bytes, start: int):
    return client.patch(relative(location), body=chunk,
                        headers={"Content-Type": OCTET_STREAM, "Content-Length": str(len(chunk)),
                                 "Content-Range": content_range(start, chunk)})


# ---- streamed ------------------------------------------------------------------------------

def test_streamed_upload_patch_without_range_then_put(client):
    blob = random_blob(42)
    location = start_upload(client, REPO)
    patched = client.patch(relative(location), body=blob.data, headers={"Content-Type": OCTET_STREAM})
    assert patched.status == 202
    assert patched.header("Location")
    assert patched.header("Range") == f"0-{blob.size - 1}"
    close_and_check(client, patched.header("Location"), blob)


# ---- monolithic ----------------------------------------------------------------------------

def test_single_post_with_digest_creates_the_blob(client):
    config = image_config()
    response = client.post(f"/v2/{REPO}/blobs/uploads/?digest={config.digest}", body=config.data,
                           headers={"Content-Type": OCTET_STREAM, "Content-Length": str(config.size)})
    assert response.status in (201, 202)
    assert response.header("Location")
    if response.status == 201:
        assert fetch(client, relative(response.header("Location"))).body == config.data
        assert_blob_served(client, REPO, config)
    else:
        assert client.get(f"/v2/{REPO}/blobs/{config.digest}").status == 404


def test_post_opens_a_session_with_a_unique_location(client):
    first, second = start_upload(client, REPO), start_upload(client, REPO)
    assert first != second
    assert re.search(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}", first), first


def test_post_then_put_uploads_config_and_layer(client):
    assert client.get(f"/v2/{REPO}/blobs/{ABSENT_DIGEST}").status == 404
    for blob in (image_config(), random_blob(300)):
        location = start_upload(client, REPO)
        response = client.put(with_query(location, digest=blob.digest), body=blob.data,
                              headers={"Content-Type": OCTET_STREAM, "Content-Length": str(blob.size)})
        assert response.status == 201
        assert response.header("Location")
        assert fetch(client, relative(response.header("Location"))).body == blob.data
        assert_blob_served(client, REPO, blob)


def test_zero_length_blob_round_trips(client):
    blob = Blob(b"")
    push_blob(client, REPO, blob)
    head = client.head(f"/v2/{REPO}/blobs/{blob.digest}")
    assert head.status == 200
    assert head.header("Content-Length") == "0"
    fetched = fetch(client, f"/v2/{REPO}/blobs/{blob.digest}")
    assert fetched.status == 200
    assert fetched.body == b""


def test_put_with_a_digest_that_does_not_match_is_rejected(client):
    blob = random_blob(64)
    location = start_upload(client, REPO)
    response = client.put(with_query(location, digest=ABSENT_DIGEST), body=blob.data)
    assert_oci_error(response, 400, "DIGEST_INVALID")
    assert client.head(f"/v2/{REPO}/blobs/{ABSENT_DIGEST}").status == 404
    assert client.head(f"/v2/{REPO}/blobs/{blob.digest}").status == 404


def test_single_post_with_a_digest_that_does_not_match_is_rejected(client):
    response = client.post(f"/v2/{REPO}/blobs/uploads/?digest={ABSENT_DIGEST}", body=b"other bytes")
    assert_oci_error(response, 400, "DIGEST_INVALID")
    assert client.head(f"/v2/{REPO}/blobs/{ABSENT_DIGEST}").status == 404


def test_oversized_single_request_is_refused_with_an_oci_error(client):
    """A body over the Lambda limit must be chunked; the refusal is still an OCI error body."""
    blob = random_blob(4_456_448 + 1)
    response = client.post(f"/v2/{REPO}/blobs/uploads/?digest={blob.digest}", body=blob.data)
    assert_oci_error(response, 413, "UNSUPPORTED")


# ---- chunked -------------------------------------------------------------------------------

def chunked_blob(min_chunk: int | None) -> tuple[Blob, int]:
    """The suite's chunked blob, rebuilt as (2 * min - 2) bytes when the registry's
    OCI-Chunk-Min-Length exceeds the first chunk; returns the blob and the split point."""
    size = SMALL_CHUNKED_SIZE
    if min_chunk is not None and min_chunk > size // 2 + 1:
        size = min_chunk * 2 - 2
    return random_blob(size), size // 2 + 1


def open_chunked_session(client, honour_min_length: bool) -> tuple[str, Blob, int]:
    response = client.post(f"/v2/{REPO}/blobs/uploads/", headers={"Content-Length": "0"})
    assert response.status == 202
    location = response.header("Location")
    assert location
    advertised = response.header("OCI-Chunk-Min-Length")
    blob, split = chunked_blob(int(advertised) if honour_min_length and advertised else None)
    return location, blob, split


CHUNK_MODES = pytest.mark.parametrize("honour_min_length", [False, True], ids=["small-chunks", "min-length-chunks"])


@CHUNK_MODES
def test_out_of_order_first_chunk_is_416(client, honour_min_length):
    location, blob, split = open_chunked_session(client, honour_min_length)
    second = blob.data[split:]
    response = put_chunk(client, location, second, split)
    assert response.status == 416


@CHUNK_MODES
def test_chunked_upload_with_retry_status_and_close(client, honour_min_length):
    location, blob, split = open_chunked_session(client, honour_min_length)
    first, second = blob.split(split)

    accepted = put_chunk(client, location, first, 0)
    assert accepted.status == 202
    assert accepted.header("Location")
    assert accepted.header("Range") == f"0-{len(first) - 1}"

    # Re-sending the chunk already accepted is out of order now.
    assert put_chunk(client, location, first, 0).status == 416

    status = client.get(relative(location))
    assert status.status == 204
    assert status.header("Location")
    assert status.header("Range") == f"0-{len(first) - 1}"

    accepted = put_chunk(client, status.header("Location"), second, len(first))
    assert accepted.status == 202
    assert accepted.header("Location")
    assert accepted.header("Range") == f"0-{blob.size - 1}"

    close_and_check(client, accepted.header("Location"), blob)


def test_chunked_upload_with_final_chunk_in_the_closing_put(client):
    location, blob, split = open_chunked_session(client, honour_min_length=False)
    first, second = blob.split(split)
    accepted = put_chunk(client, location, first, 0)
    assert accepted.status == 202
    closed = client.put(with_query(accepted.header("Location"), digest=blob.digest), body=second,
                        headers={"Content-Type": OCTET_STREAM, "Content-Length": str(len(second)),
                                 "Content-Range": content_range(len(first), second)})
    assert closed.status == 201, closed.body
    assert closed.header("Location")
    assert_blob_served(client, REPO, blob)


def test_twelve_mib_blob_in_four_mib_chunks(client):
    """Larger than one request may carry, so it must go in chunks; S3 multipart parts need
    5 MiB, so the registry has to carry 4 MiB chunks across requests."""
    blob = random_blob(12 * MIB)
    location = start_upload(client, REPO)
    offset = 0
    while offset < blob.size:
        chunk = blob.data[offset:offset + 4 * MIB]
        response = put_chunk(client, location, chunk, offset)
        assert response.status == 202, response.body
        offset += len(chunk)
        assert response.header("Range") == f"0-{offset - 1}"
        location = response.header("Location")
    closed = client.put(with_query(location, digest=blob.digest), headers={"Content-Length": "0"})
    assert closed.status == 201, closed.body
    assert_blob_served(client, REPO, blob)


def test_chunked_upload_with_a_wrong_digest_is_rejected(client):
    location, blob, split = open_chunked_session(client, honour_min_length=False)
    first, second = blob.split(split)
    assert put_chunk(client, location, first, 0).status == 202
    assert put_chunk(client, location, second, len(first)).status == 202
    response = client.put(with_query(location, digest=ABSENT_DIGEST))
    assert_oci_error(response, 400, "DIGEST_INVALID")
    assert client.head(f"/v2/{REPO}/blobs/{blob.digest}").status == 404


def test_upload_session_is_gone_once_closed(client):
    blob = random_blob(10)
    location = start_upload(client, REPO)
    assert client.put(with_query(location, digest=blob.digest), body=blob.data).status == 201
    assert_oci_error(client.get(relative(location)), 404, "BLOB_UPLOAD_UNKNOWN")


def test_unknown_upload_session_is_404_for_every_method(client):
    bogus = f"/v2/{REPO}/blobs/uploads/{'ab' * 16}"
    assert_oci_error(client.get(bogus), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(client.patch(bogus, body=b"x", headers={"Content-Range": "0-0"}), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_oci_error(client.put(with_query(bogus, digest=ABSENT_DIGEST)), 404, "BLOB_UPLOAD_UNKNOWN")
    # A live session is unknown under any other repository name.
    session = relative(start_upload(client, REPO)).rsplit("/", 1)[1]
    assert client.get(f"/v2/conformance/someone-else/blobs/uploads/{session}").status == 404


# ---- cross-repository mount ----------------------------------------------------------------

def test_mount_without_from_of_unknown_digest_opens_a_session(client):
    response = client.post(f"/v2/{MOUNT_TARGET}/blobs/uploads/?mount={ABSENT_DIGEST}")
    assert response.status == 202
    assert response.header("Location")
    assert relative(response.header("Location")).startswith(f"/v2/{MOUNT_TARGET}/blobs/uploads/")


def test_mount_from_another_repository(client):
    blob = random_blob(42)
    push_blob(client, REPO, blob)
    response = client.post(f"/v2/{MOUNT_TARGET}/blobs/uploads/?mount={blob.digest}&from={REPO}")
    assert response.status in (201, 202)
    if response.status == 201:
        assert relative(response.header("Location")) == f"/v2/{MOUNT_TARGET}/blobs/{blob.digest}"
        if response.header("Docker-Content-Digest"):
            assert response.header("Docker-Content-Digest") == blob.digest
        assert_blob_served(client, MOUNT_TARGET, blob)
    else:
        assert relative(response.header("Location")).startswith(f"/v2/{MOUNT_TARGET}/blobs/uploads/")


def test_mount_of_blob_absent_from_the_source_opens_a_session(client):
    blob = random_blob(42)
    push_blob(client, "conformance/holder", blob)
    response = client.post(f"/v2/{MOUNT_TARGET}/blobs/uploads/?mount={blob.digest}&from={REPO}")
    assert response.status == 202
    assert relative(response.header("Location")).startswith(f"/v2/{MOUNT_TARGET}/blobs/uploads/")


def test_mount_without_from_of_known_blob_is_201_or_202(client):
    """The registry MAY treat `from` as optional and mount the blob if it can find it."""
    blob = random_blob(42)
    push_blob(client, REPO, blob)
    response = client.post(f"/v2/{MOUNT_TARGET}/blobs/uploads/?mount={blob.digest}")
    assert response.status in (201, 202)
    if response.status == 201:
        assert relative(response.header("Location")) == f"/v2/{MOUNT_TARGET}/blobs/{blob.digest}"
        assert_blob_served(client, MOUNT_TARGET, blob)
    else:
        assert relative(response.header("Location")).startswith(f"/v2/{MOUNT_TARGET}/blobs/uploads/")


# ---- manifests -----------------------------------------------------------------------------

@pytest.fixture
def image(client) -> tuple[Blob, Blob]:
    config, layer = image_config(), random_blob(256)
    push_blob(client, REPO, config)
    push_blob(client, REPO, layer)
    return config, layer


def test_get_of_nonexistent_manifest_is_404(client):
    """The suite probes with `.INVALID_MANIFEST_NAME` before pushing anything."""
    response = client.get(f"/v2/{REPO}/manifests/.INVALID_MANIFEST_NAME", headers={"Accept": OCI_MANIFEST})
    assert response.status == 404


def test_manifest_accepted_under_several_tags(client, image):
    manifest = image_manifest(image[0], [image[1]], embed_config_data=True)
    for tag in ("test0", "test1", "test2", "test3"):
        response = push_manifest(client, REPO, tag, manifest)
        assert response.status == 201, response.body
        assert response.header("Location")
        assert response.header("Docker-Content-Digest") == manifest.digest
    response = client.get(f"/v2/{REPO}/manifests/{manifest.digest}", headers={"Accept": OCI_MANIFEST})
    assert response.status == 200
    assert response.body == manifest.body
    for tag in ("test0", "test3"):
        assert client.get(f"/v2/{REPO}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}).body == manifest.body


def test_manifest_with_no_layers_and_no_media_type_field(client, image):
    """The suite's empty-layer manifest omits `mediaType`; the Content-Type says what it is."""
    manifest = image_manifest(image[0], [], declare_media_type=False, embed_config_data=True)
    response = push_manifest(client, REPO, "emptylayer", manifest, content_type=OCI_MANIFEST)
    assert response.status == 201, response.body
    assert response.header("Location")
    pulled = client.get(relative(response.header("Location")), headers={"Accept": OCI_MANIFEST})
    assert pulled.status == 200
    assert pulled.body == manifest.body
    assert pulled.header("Content-Type") == OCI_MANIFEST


def test_manifest_pushed_by_digest(client, image):
    manifest = image_manifest(image[0], [image[1]])
    response = push_manifest(client, REPO, manifest.digest, manifest)
    assert response.status == 201, response.body
    assert relative(response.header("Location")) == f"/v2/{REPO}/manifests/{manifest.digest}"
    assert response.header("Docker-Content-Digest") == manifest.digest
    pulled = client.get(f"/v2/{REPO}/manifests/{manifest.digest}", headers={"Accept": OCI_MANIFEST})
    assert pulled.body == manifest.body


@pytest.mark.parametrize("padding", [0, 300 * 1024], ids=["small", "over-256KiB"])
def test_manifest_bytes_are_stored_exactly(client, image, padding):
    """The registry MUST keep the exact byte representation: odd whitespace, non-ASCII text,
    and bodies big enough to leave the metadata table."""
    annotations = {"org.example.note": "déjà vu — ✓ 雪", "org.example.padding": "p" * padding}
    manifest = image_manifest(image[0], [image[1]], annotations=annotations, indent="   ")
    body = manifest.body.replace(b"{", b"{ ", 1) + b"\n\n"
    response = client.put(f"/v2/{REPO}/manifests/exact", body=body, headers={"Content-Type": OCI_MANIFEST})
    assert response.status == 201, response.body
    assert response.header("Docker-Content-Digest") == digest_of(body)
    for reference in ("exact", digest_of(body)):
        pulled = client.get(f"/v2/{REPO}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert pulled.status == 200
        assert pulled.body == body
        assert pulled.header("Content-Length") == str(len(body))


def test_content_type_parameters_are_ignored(client, image):
    manifest = image_manifest(image[0], [image[1]])
    response = push_manifest(client, REPO, "params", manifest, content_type=f"{OCI_MANIFEST}; charset=utf-8")
    assert response.status == 201, response.body
    pulled = client.get(f"/v2/{REPO}/manifests/params", headers={"Accept": OCI_MANIFEST})
    assert pulled.header("Content-Type") == OCI_MANIFEST


def test_manifest_referencing_unknown_blob_is_rejected_with_manifest_blob_unknown(client, image):
    manifest = image_manifest(image[0], [random_blob(32)])
    response = push_manifest(client, REPO, "dangling", manifest)
    assert_oci_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


def test_manifest_pushed_under_a_digest_it_does_not_have_is_rejected(client, image):
    manifest = image_manifest(image[0], [image[1]])
    response = push_manifest(client, REPO, ABSENT_DIGEST, manifest)
    assert response.status == 400
    assert client.get(f"/v2/{REPO}/manifests/{manifest.digest}", headers={"Accept": OCI_MANIFEST}).status == 404


def test_manifest_over_the_size_limit_is_413(client, image):
    """SHOULD: a registry that limits manifest size answers 413 to a push over it, and should
    accept at least 4 MB."""
    manifest = image_manifest(image[0], [image[1]], annotations={"pad": "x" * (4 * 1024 * 1024 + 100)})
    response = push_manifest(client, REPO, "huge", manifest)
    assert response.status == 413


def test_artifact_with_empty_config_and_subject_not_yet_pushed(client, image):
    """A registry MUST accept a manifest whose `subject` is not in the repository, and (with
    the referrers API) answer OCI-Subject with the subject's digest."""
    empty = empty_json_blob()
    assert empty.digest == EMPTY_JSON_DIGEST
    push_blob(client, REPO, empty)
    subject = image_manifest(image[0], [image[1]])
    artifact = image_manifest(empty, [empty], artifact_type="application/vnd.example.sbom.v1", subject=subject)
    response = push_manifest(client, REPO, artifact.digest, artifact)
    assert response.status == 201, response.body
    assert response.header("OCI-Subject") == subject.digest
    pulled = client.get(f"/v2/{REPO}/manifests/{artifact.digest}", headers={"Accept": OCI_MANIFEST})
    assert pulled.body == artifact.body


# ---- teardown ------------------------------------------------------------------------------

def test_teardown_deletes_manifests_then_blobs(client, image):
    config, layer = image
    manifest = image_manifest(config, [layer])
    empty_layers = image_manifest(config, [], declare_media_type=False)
    assert push_manifest(client, REPO, "test0", manifest).status == 201
    assert push_manifest(client, REPO, "emptylayer", empty_layers, content_type=OCI_MANIFEST).status == 201
    for digest in (manifest.digest, empty_layers.digest):
        response = client.delete(f"/v2/{REPO}/manifests/{digest}")
        assert 200 <= response.status < 300 or response.status == 405
    for blob in (config, layer):
        response = client.delete(f"/v2/{REPO}/blobs/{blob.digest}")
        assert 200 <= response.status < 300 or response.status in (404, 405)
