"""Property-based fuzzing of the HTTP API: random and malformed requests, sent through the API
Gateway stand-in into the real handler, must get what any client can rely on:

1. never a 5xx: bad input is the client's fault, so it gets a 4xx;
2. every 4xx with a body is the spec's `{"errors": [{"code", "message", ...}]}` with a spec code
   (but for API Gateway's own 413, which no function sees);
3. nothing stored is lost or corrupted: each example starts from a fresh bucket and table
   holding a known blob and a tagged manifest in two repositories, TARGET (which requests
   name, so they collide with what is stored) and SAFE (which no request path names). After
   the example both still serve the same bytes, except what a legitimate DELETE (or a push to
   the same tag) in TARGET removed.

Besides: a 2xx means the name, digest and (for a push) tag in the path follow the spec's
grammar; a manifest the registry took reads back byte-exact, lists, and deletes; an upload
driven by random PATCH/PUT/GET/DELETE keeps `Range` equal to the bytes it accepted and stores
exactly those. Examples: 250 in all; BERTH_FUZZ_SCALE=<factor> runs more. Failures the fuzz
found are kept as explicit examples.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode

import pytest
import requests
from hypothesis import HealthCheck, assume, example, given, note, settings
from hypothesis import strategies as st

from berth.local.provision import provision
from chalicelib.api.dispatch import find_route
from chalicelib.api.request import MAX_REQUEST_BODY
from chalicelib.errors import RegistryError
from chalicelib.registry import Registry
from chalicelib.settings import Settings
from chalicelib.storage.clients import AwsClients
from tests.api.oci_fixtures import SPEC_ERROR_CODES
from tests.conftest import REGION, ApiClient
from tests.helpers import digest_of, manifest_body

# ---- what every example starts with ----------------------------------------------------------

TARGET = "fuzz/target"  # requests name it: collisions with stored data are the point
SAFE = "vault/protected"  # no request path names it; `from=` may (a mount only reads)
TAG = "stable"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = bytes(range(256)) * 3 + b"fuzz layer"
CONFIG_DIGEST = digest_of(CONFIG)
LAYER_DIGEST = digest_of(LAYER)
MANIFEST = manifest_body(CONFIG_DIGEST, [(LAYER_DIGEST, len(LAYER))])
MANIFEST_DIGEST = digest_of(MANIFEST)
UPLOAD_CHUNK = b"bytes already in the open upload"
ABSENT_DIGEST = digest_of(b"no example ever stores these bytes")

# Placeholders for what only exists once an example's world is built.
UPLOAD = "@UPLOAD@"  # an open upload of TARGET holding UPLOAD_CHUNK
SAFE_UPLOAD = "@SAFE_UPLOAD@"  # an open upload of SAFE holding UPLOAD_CHUNK
LAST_UPLOAD = "@LAST_UPLOAD@"  # the upload an earlier request of the example opened (else UPLOAD)


@dataclass
class World:
    client: ApiClient
    registry: Registry
    upload: str
    safe_upload: str
    last_upload: str = ""

    def fill(self, text: str) -> str:
        return (text.replace(LAST_UPLOAD, self.last_upload or self.upload).replace(UPLOAD, self.upload)
                .replace(SAFE_UPLOAD, self.safe_upload))

    def saw(self, response: Any) -> None:
        """Remember the upload a response points at (a POST that opened one, say)."""
        location = response.header("Location") or ""
        if "/blobs/uploads/" in location:
            self.last_upload = location.rsplit("/", 1)[1]


class LogCapture(logging.Handler):
    """What the registry (and Chalice, whose app logger shares the name) logs, tracebacks included."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _push_known(client: ApiClient, repo: str) -> None:
    for data, digest in ((CONFIG, CONFIG_DIGEST), (LAYER, LAYER_DIGEST)):
        response = client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", body=data)
        assert response.status == 201, response.body
    response = client.put(f"/v2/{repo}/manifests/{TAG}", body=MANIFEST, headers={"Content-Type": OCI_MANIFEST})
    assert response.status == 201, response.body


def _open_upload(client: ApiClient, repo: str) -> str:
    response = client.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status == 202, response.body
    location = response.header("Location") or ""
    response = client.patch(location, body=UPLOAD_CHUNK, headers={"Content-Range": f"0-{len(UPLOAD_CHUNK) - 1}"})
    assert response.status == 202, response.body
    return location.rsplit("/", 1)[-1]


def _snapshot(aws: AwsClients, name: str) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Every item of the table and object of the bucket, as stored."""
    items = [item for page in aws.dynamodb.get_paginator("scan").paginate(TableName=name) for item in page["Items"]]
    assert not aws.s3.list_multipart_uploads(Bucket=name).get("Uploads")
    objects = {}
    for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for entry in page.get("Contents", []):
            objects[entry["Key"]] = aws.s3.get_object(Bucket=name, Key=entry["Key"])["Body"].read()
    return items, objects


@pytest.fixture
def worlds(aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Any]]:
    """A factory of fresh worlds, one per example (the `client` fixture lives for a whole test,
    and hypothesis runs every example inside it). The starting state is built once through the
    API, then copied item by item and object by object into a new table and bucket for each
    example: the same state, for much less than pushing it again."""
    import app as app_module

    capture = LogCapture()
    logger = logging.getLogger("berth")
    logger.addHandler(capture)
    tables: list[str] = []  # bucket and table names; the first is the template's

    def registry_for(name: str) -> Registry:
        provision(aws.s3, aws.dynamodb, name, name)
        tables.append(name)
        registry = Registry.build(Settings(bucket=name, table=name, region=REGION, presign_seconds=300), aws)
        monkeypatch.setattr(app_module, "registry", registry)
        return registry

    template = f"berth-fuzz-{uuid.uuid4().hex[:12]}"
    registry_for(template)
    client = ApiClient(app_module.app)
    for repo in (TARGET, SAFE):
        _push_known(client, repo)
    upload, safe_upload = _open_upload(client, TARGET), _open_upload(client, SAFE)
    items, objects = _snapshot(aws, template)

    def drop(name: str) -> None:
        """Remove an earlier example's bucket and table (moto keeps them in memory)."""
        for upload in aws.s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            aws.s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            if page.get("Contents"):
                aws.s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": o["Key"]} for o in page["Contents"]]})
        aws.s3.delete_bucket(Bucket=name)
        aws.dynamodb.delete_table(TableName=name)

    def build() -> tuple[World, LogCapture]:
        while len(tables) > 1:
            drop(tables.pop())
        name = f"berth-fuzz-{uuid.uuid4().hex[:12]}"
        registry = registry_for(name)
        for start in range(0, len(items), 25):
            batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            assert not aws.dynamodb.batch_write_item(RequestItems={name: batch}).get("UnprocessedItems")
        for key, data in objects.items():
            aws.s3.put_object(Bucket=name, Key=key, Body=data)
        capture.lines.clear()
        return World(ApiClient(app_module.app), registry, upload, safe_upload), capture

    try:
        yield build
    finally:
        logger.removeHandler(capture)
        for name in tables:
            drop(name)


# ---- checks -------------------------------------------------------------------------------------

@dataclass
class Sent:
    method: str
    target: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def path(self) -> str:
        """The path the registry sees: API Gateway decodes it."""
        return unquote(self.target.partition("?")[0])

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"...(%d bytes)" % len(self.body)
        return f"Sent({self.method!r}, {self.target[:400]!r}, {self.headers!r}, {body!r})"

    def describe(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"...(%d bytes)" % len(self.body)
        return f"{self.method} {self.target[:400]}\n  headers={self.headers}\n  body={body!r}"


def send(world: World, logs: LogCapture, sent: Sent) -> Any:
    logs.lines.clear()
    response = world.client.request(sent.method, sent.target, body=sent.body, headers=list(sent.headers))
    check_response(sent, response, logs)
    return response


def check_response(sent: Sent, response: Any, logs: LogCapture) -> None:
    seen = f"{sent.describe()}\n-> {response.status} {response.body[:600]!r}\n" + "\n".join(logs.lines)
    note(seen)
    assert response.status < 500, f"server error:\n{seen}"
    if 200 <= response.status < 300:
        check_accepted_input(sent, seen)
    if not 400 <= response.status < 500:
        return
    if sent.method == "HEAD":
        assert response.body == b"", f"a HEAD answer with a body:\n{seen}"
        return
    if not response.body:
        return
    if (response.status, response.body) == (413, b'{"message":"Request Too Long"}'):
        return  # API Gateway's own answer to a body whose event would pass Lambda's payload limit
    try:
        doc = json.loads(response.body)
    except ValueError:
        raise AssertionError(f"a 4xx body that is not JSON:\n{seen}") from None
    assert isinstance(doc, dict) and isinstance(doc.get("errors"), list) and doc["errors"], f"not OCI errors:\n{seen}"
    for error in doc["errors"]:
        assert isinstance(error, dict), f"an error that is not an object:\n{seen}"
        assert error.get("code") in SPEC_ERROR_CODES, f"not a spec error code:\n{seen}"
        assert isinstance(error.get("message"), str), f"an error without a message:\n{seen}"


# The spec's grammars (distribution-spec, "Pulling manifests"), matched in full.
NAME_GRAMMAR = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
TAG_GRAMMAR = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_GRAMMAR = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")


def check_accepted_input(sent: Sent, seen: str) -> None:
    """A 2xx means the registry took the input as valid: the name, tag and digest in the path
    must then follow the spec's grammar."""
    try:
        _, params = find_route(sent.method, sent.path)
    except RegistryError:
        return
    name = params.get("name")
    if name is not None:
        assert len(name) <= 255 and NAME_GRAMMAR.fullmatch(name), f"accepted an invalid name {name!r}:\n{seen}"
    digest = params.get("digest")
    if digest is not None:
        assert DIGEST_GRAMMAR.fullmatch(digest), f"accepted an invalid digest {digest!r}:\n{seen}"
    reference = params.get("reference")
    if reference is not None and sent.method == "PUT":
        assert (DIGEST_GRAMMAR if ":" in reference else TAG_GRAMMAR).fullmatch(reference), \
            f"accepted an invalid reference {reference!r}:\n{seen}"


def fetch(world: World, repo: str, digest: str) -> bytes | None:
    response = world.client.get(f"/v2/{repo}/blobs/{digest}")
    if response.status != 307:
        return None
    fetched = requests.get(response.header("Location") or "", timeout=30)
    return fetched.content if fetched.status_code == 200 else None


def manifest_bytes(world: World, repo: str, reference: str) -> tuple[int, bytes]:
    response = world.client.get(f"/v2/{repo}/manifests/{reference}")
    return response.status, response.body


@dataclass
class Excused:
    """What a request may legitimately have removed from TARGET."""

    blobs: set[str] = field(default_factory=set)
    tag: bool = False
    manifest: bool = False

    def add(self, sent: Sent, status: int) -> None:
        if not 200 <= status < 300:
            return
        path = sent.path
        if sent.method == "DELETE":
            for digest in (CONFIG_DIGEST, LAYER_DIGEST):
                if path == f"/v2/{TARGET}/blobs/{digest}":
                    self.blobs.add(digest)
            if path in (f"/v2/{TARGET}/manifests/{TAG}", f"/v2/{TARGET}/manifests/{MANIFEST_DIGEST}"):
                self.tag = True
            if path == f"/v2/{TARGET}/manifests/{MANIFEST_DIGEST}":
                self.manifest = True
        if sent.method == "PUT" and path == f"/v2/{TARGET}/manifests/{TAG}":
            self.tag = True


def check_stored(world: World, excused: Excused, context: str) -> None:
    for repo in (TARGET, SAFE):
        mine = excused if repo == TARGET else Excused()
        for data, digest in ((CONFIG, CONFIG_DIGEST), (LAYER, LAYER_DIGEST)):
            if digest not in mine.blobs:
                assert fetch(world, repo, digest) == data, f"blob {digest} of {repo} lost or changed after\n{context}"
        if not mine.tag:
            assert manifest_bytes(world, repo, TAG) == (200, MANIFEST), f"{repo}:{TAG} lost or changed after\n{context}"
        if not mine.manifest:
            assert manifest_bytes(world, repo, MANIFEST_DIGEST) == (200, MANIFEST), \
                f"{repo}@{MANIFEST_DIGEST} lost or changed after\n{context}"
    # SAFE's open upload still holds its chunk, and finishes into exactly those bytes.
    location = f"/v2/{SAFE}/blobs/uploads/{world.safe_upload}"
    status = world.client.get(location)
    assert status.status == 204 and status.header("Range") == f"0-{len(UPLOAD_CHUNK) - 1}", \
        f"SAFE's open upload moved ({status.status} {status.header('Range')}) after\n{context}"
    finished = world.client.put(f"{location}?digest={digest_of(UPLOAD_CHUNK)}")
    assert finished.status == 201, f"SAFE's open upload cannot finish ({finished.body!r}) after\n{context}"
    assert fetch(world, SAFE, digest_of(UPLOAD_CHUNK)) == UPLOAD_CHUNK, f"SAFE's upload corrupted after\n{context}"


# ---- strategies -----------------------------------------------------------------------------

_COMPONENT = r"[a-z0-9]{1,8}(?:(?:\.|_|__|-{1,2})[a-z0-9]{1,8}){0,2}"
valid_names = st.from_regex(rf"\A{_COMPONENT}(?:/{_COMPONENT}){{0,2}}\Z").filter(lambda n: n != SAFE)
odd_names = st.sampled_from([
    "FUZZ/target", "fuzz/Target", "fuzz/../target", "..", ".", "fuzz//target", "/fuzz/target", "fuzz/target/",
    "a" * 256, "a/" * 127 + "a", "a" * 255, "fuzz%2Ftarget", "fuzz%2ftarget", "%66uzz/target", "%2e%2e",
    "fuzz%00target", "fuzz target", "_catalog", "fuzz/_catalog", "-fuzz", "fuzz-", "fuzz___target", "fuzz..target",
    "é", "fuzz/target/manifests/stable", "fuzz/target/blobs/uploads", "fuzz/target/blobs", "v2", "%", "%zz",
    "fuzz%252Ftarget", "fuzz/target%2F", "fuzz/target%0A", "fuzz/target%0D", "fuzz/target%20", "fuzz/target%09",
    "fuzz/target/tags/list", "fuzz/target/referrers",
])
junk_text = st.text(st.characters(exclude_characters="?#", exclude_categories=["Cs"]), max_size=40)
names = st.one_of(st.just(TARGET), st.just(TARGET), valid_names, odd_names, junk_text).filter(
    lambda n: not unquote(n).startswith(SAFE))

hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
digests = st.one_of(
    st.sampled_from([LAYER_DIGEST, CONFIG_DIGEST, MANIFEST_DIGEST, ABSENT_DIGEST]),
    st.sampled_from([LAYER_DIGEST.replace(":", "%3A"), LAYER_DIGEST.upper(), "sha256:" + LAYER_DIGEST[7:].upper(),
                     "sha256", "sha256:", ":" + "a" * 64, "sha256::" + "a" * 64, "sha256:" + "g" * 64,
                     "sha256+b64:" + "a" * 64, "sha256:" + "=" * 64, "sha512:" + hashlib.sha512(LAYER).hexdigest(),
                     LAYER_DIGEST + "%0A", LAYER_DIGEST + "%0D", "%20" + LAYER_DIGEST, LAYER_DIGEST[:-1] + "%0A",
                     "sha256:" + "a" * 10_000]),
    hex64.map(lambda h: "sha256:" + h),
    st.text("0123456789abcdef", min_size=128, max_size=128).map(lambda h: "sha512:" + h),
    st.builds(lambda alg, h: f"{alg}:{h}", st.sampled_from(["sha256", "sha512", "md5", "sha1", "sha384", "SHA256",
                                                            "blake3", "sha-256", "sha256.x", "a+b"]),
              st.text("0123456789abcdefABCDEF", max_size=140)),
    junk_text,
)
tag_grammar = st.from_regex(r"\A[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}\Z")
tags = st.one_of(st.just(TAG), st.just("latest"), tag_grammar)
bad_tags = st.sampled_from(["-bad", ".x", "a" * 129, "tag with space", "t%2Fx", "..", "stable:", ":", "a:b", "STABLE",
                            "stable%00", "stable%0A", "latest%0A", "stable%0D", "stable%20", "%E2%80%8Bstable", "é"])
references = st.one_of(tags, digests, bad_tags, junk_text)
upload_ids = st.one_of(
    st.just(UPLOAD), st.just(LAST_UPLOAD), st.just(LAST_UPLOAD), st.just(SAFE_UPLOAD),
    st.uuids().map(lambda u: u.hex), st.uuids().map(str), st.uuids().map(lambda u: u.hex.upper()),
    st.sampled_from(["0" * 32, "f" * 32, "0" * 31, "0" * 33, "parts", "..", UPLOAD + "%0A", UPLOAD.upper()]),
    junk_text,
)
numbers = st.one_of(
    st.sampled_from(["-1", "0", "1", "2", "1000", "1001", "9" * 40, "1e3", "0x10", " 5", "5 ", "", "+3", "1_000",
                     "NaN", "inf", "-0", "5368709120", "53687091200000", "4456448", "٣", "１"]),
    st.sampled_from(["²", "①", "⁵", "١٢", "𝟗", "߀"]),  # digits by str.isdigit(), not all of them by int()
    st.sampled_from(["9" * 5000, "0" * 5000 + "1", "-" + "9" * 5000]),  # past int()'s 4,300 digits
    st.integers(-(2**70), 2**70).map(str),
    st.text(st.characters(categories=("Nd", "No", "Nl")), min_size=1, max_size=4),
)
anything = st.one_of(digests, names, numbers, tags, st.just(SAFE), junk_text)
# The query parameters each endpoint reads, and what to put in them.
PARAMETERS: dict[str, st.SearchStrategy[str]] = {
    "digest": digests, "mount": digests, "from": st.one_of(st.just(TARGET), st.just(SAFE), names),
    "n": numbers, "last": st.one_of(tags, bad_tags, names, st.just("x" * 2000), junk_text),
    "artifactType": st.one_of(st.sampled_from([OCI_CONFIG, OCI_MANIFEST]), junk_text),
    "berth-direct": numbers, "first": numbers, "count": numbers,
}


@st.composite
def query_strings(draw: st.DrawFn, keys: list[str]) -> str:
    pairs = [(k, draw(PARAMETERS[k])) for k in keys if draw(st.integers(0, 2)) > 0]
    if draw(st.integers(0, 4)) == 0:
        pairs.append((draw(st.sampled_from([*PARAMETERS, "junk", ""])), draw(anything)))
    pairs = draw(st.permutations(pairs))
    if not pairs:
        return draw(st.sampled_from(["", "", "", "?", "?&&", "?=", "?n", "?%zz=%zz", "?digest", "?mount&from"]))
    if draw(st.booleans()):
        return "?" + urlencode(pairs)
    return "?" + "&".join(f"{k}={v}" for k, v in pairs).replace("#", "%23")


def json_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                       st.text(max_size=20), st.sampled_from(["\ud800", "x\udfff", "\x00", "\u202e"]))
    return st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                        max_leaves=8)


def descriptor(media_type: str, digest: str, size: int) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size}


odd_strings = st.one_of(st.text(max_size=12), st.sampled_from(["\ud800", "x\udfff", "\x00", "\u202e", "", "é" * 3]))
annotation_maps = st.dictionaries(odd_strings, odd_strings, min_size=1, max_size=3)
MANIFEST_TYPES = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST]
TOP_KEYS = ["schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "annotations", "artifactType"]


@st.composite
def odd_valid_manifests(draw: st.DrawFn) -> dict[str, Any]:
    """A manifest the registry should take, using what the spec allows: annotations, artifact
    types, a subject that may not exist, foreign layers, unknown fields, huge sizes."""
    def maybe_annotate(target: dict[str, Any]) -> dict[str, Any]:
        if draw(st.integers(0, 2)) == 0:
            target["annotations"] = draw(annotation_maps)
        return target

    media_type = draw(st.sampled_from(MANIFEST_TYPES))
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if media_type in (OCI_MANIFEST, DOCKER_MANIFEST):
        doc["config"] = maybe_annotate(descriptor(draw(st.sampled_from([OCI_CONFIG, "application/vnd.oci.empty.v1+json",
                                                                        "x/y"])), CONFIG_DIGEST, len(CONFIG)))
        doc["layers"] = [maybe_annotate(descriptor(OCI_LAYER, LAYER_DIGEST, draw(st.sampled_from(
            [len(LAYER), 0, 2**63, 10**40])))) for _ in range(draw(st.integers(0, 3)))]
        if draw(st.booleans()):
            doc["layers"].append(descriptor("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                                            ABSENT_DIGEST, 7))
    else:
        doc["manifests"] = [maybe_annotate(descriptor(OCI_MANIFEST, MANIFEST_DIGEST, len(MANIFEST)))
                            for _ in range(draw(st.integers(0, 2)))]
    if media_type in (OCI_MANIFEST, OCI_INDEX):
        if draw(st.booleans()):
            doc["artifactType"] = draw(odd_strings)
        if draw(st.booleans()):
            subject = draw(st.one_of(st.just(MANIFEST_DIGEST), st.just(ABSENT_DIGEST), hex64.map("sha256:".__add__)))
            doc["subject"] = maybe_annotate(descriptor(OCI_MANIFEST, subject, draw(st.sampled_from([1, 2**62]))))
            if draw(st.booleans()):
                doc["subject"]["artifactType"] = draw(odd_strings)
    maybe_annotate(doc)
    if "layers" in doc and draw(st.integers(0, 5)) == 0:  # more blobs than one DynamoDB transaction holds
        count = draw(st.sampled_from([96, 97, 98, 150, 250]))
        doc["layers"] += [descriptor(OCI_LAYER, digest_of(b"%d" % i), 1) for i in range(count)]
    if draw(st.integers(0, 3)) == 0:
        doc[draw(st.text(max_size=8).filter(lambda k: k not in TOP_KEYS))] = draw(json_values())
    if draw(st.integers(0, 3)) == 0:
        del doc["mediaType"]  # told by Content-Type, or by shape
    return doc


@st.composite
def manifest_docs(draw: st.DrawFn) -> Any:
    """A valid image manifest or index of TARGET's content, then 0-4 mutations of it."""
    if draw(st.integers(0, 2)) == 0:
        return draw(odd_valid_manifests())
    if draw(st.booleans()):
        doc: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": draw(st.sampled_from([OCI_MANIFEST, DOCKER_MANIFEST])),
            "config": descriptor(OCI_CONFIG, CONFIG_DIGEST, len(CONFIG)),
            "layers": [descriptor(OCI_LAYER, LAYER_DIGEST, len(LAYER))],
        }
    else:
        doc = {"schemaVersion": 2, "mediaType": draw(st.sampled_from([OCI_INDEX, DOCKER_LIST])),
               "manifests": [descriptor(OCI_MANIFEST, MANIFEST_DIGEST, len(MANIFEST))]}
    big = st.sampled_from([1, 100, 10_000, 200_000, 300_000, 420_000])
    mutations = draw(st.one_of(st.just([]), st.lists(st.sampled_from(range(15)), min_size=1, max_size=4)))
    for mutation in mutations:
        descriptors = [d for d in [doc.get("config"), *(doc.get("layers") or []), *(doc.get("manifests") or [])]
                       if isinstance(d, dict)] if isinstance(doc.get("layers", []), list) and isinstance(
                           doc.get("manifests", []), list) else []
        if mutation == 0 and doc:
            doc.pop(draw(st.sampled_from(sorted(doc))))
        elif mutation == 1:
            doc[draw(st.one_of(st.sampled_from(TOP_KEYS), st.text(max_size=10)))] = draw(json_values())
        elif mutation == 2:
            doc["layers" if "layers" in doc else "manifests"] = draw(st.sampled_from([LAYER_DIGEST, "", {}, 7]))
        elif mutation == 3 and descriptors:
            draw(st.sampled_from(descriptors))["size"] = draw(st.sampled_from(
                [-1, 0, 2**63, 10**40, 1.5, "2", True, None, 1e308, []]))
        elif mutation == 4 and descriptors:
            draw(st.sampled_from(descriptors))["digest"] = draw(digests)
        elif mutation == 5:
            doc["schemaVersion"] = draw(st.sampled_from([1, "2", 2.0, True, 3, None, -2]))
        elif mutation == 6:
            doc["annotations"] = {"fuzz.big": "x" * draw(big)}
        elif mutation == 7:
            doc["annotations"] = {f"k{i}": "v" for i in range(draw(st.sampled_from([2, 500, 20_000])))}
        elif mutation == 8:
            doc["subject"] = draw(st.one_of(
                st.builds(lambda h: descriptor(OCI_MANIFEST, "sha256:" + h, 1234), hex64),
                st.just(descriptor(OCI_MANIFEST, MANIFEST_DIGEST, len(MANIFEST))),
                st.builds(lambda n: {**descriptor(OCI_MANIFEST, ABSENT_DIGEST, 1), "annotations": {"a": "x" * n}}, big),
                json_values()))
            doc["mediaType"] = draw(st.sampled_from([OCI_MANIFEST, OCI_INDEX, doc.get("mediaType")]))
        elif mutation == 9 and descriptors:
            draw(st.sampled_from(descriptors))["mediaType"] = draw(st.sampled_from(
                ["", None, 3, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "x" * 1000]))
        elif mutation == 10:
            doc["artifactType"] = draw(st.one_of(st.text(max_size=30), json_values()))
        elif mutation == 11 and isinstance(doc.get("layers"), list):
            doc["layers"].append(draw(st.one_of(json_values(), st.builds(
                lambda h: descriptor(OCI_LAYER, "sha256:" + h, 5), hex64))))
        elif mutation == 12 and descriptors:
            draw(st.sampled_from(descriptors))["annotations"] = draw(st.one_of(
                json_values(), st.builds(lambda n: {"a": "x" * n}, big)))
        elif mutation == 13:
            doc["mediaType"] = draw(st.one_of(st.sampled_from([DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, "",
                                                               "application/json", *MANIFEST_TYPES]), json_values()))
        elif mutation == 14:
            where = draw(st.sampled_from([doc, *descriptors])) if descriptors else doc
            where["annotations"] = draw(annotation_maps)
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values())  # not a manifest at all
    return doc


def encode_json(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


special_bodies = st.sampled_from([
    b"\xff\xfe\x00", b"[" * 100_000, b"{" * 5000, b'{"a":' * 3000, b'{"layers":' * 2000 + b"1",
    b"\xef\xbb\xbf" + MANIFEST, MANIFEST.replace(b"{", b"{ ", 1), b"null", b"[]", b'"x"', b"1e999", b"-0", b"{}",
    b'{"schemaVersion": 2}', b"\x00" + MANIFEST, MANIFEST + b"\x00", b'{"schemaVersion": 2, "schemaVersion": 1}',
    b'{"\\ud800": 1}', b'{"mediaType": "\\ud800"}',
    b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [], '
    b'"annotations": {"\\u0000": "\\udfff"}}',
])
big_bodies = st.sampled_from([MAX_REQUEST_BODY, MAX_REQUEST_BODY + 1, 5 * 1024 * 1024]).map(lambda n: b"\0" * n)
manifest_bodies = st.one_of(manifest_docs().map(encode_json), manifest_docs().map(encode_json), special_bodies,
                            st.sampled_from([MANIFEST, b""]), st.binary(max_size=512), st.text(max_size=100).map(
                                str.encode))
blob_bodies = st.one_of(st.just(b""), st.binary(max_size=2048),
                        st.sampled_from([LAYER, CONFIG, UPLOAD_CHUNK, MANIFEST]), big_bodies)
any_bodies = st.one_of(st.just(b""), st.just(b""), blob_bodies, manifest_bodies)
content_types = st.one_of(
    st.sampled_from([*MANIFEST_TYPES, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, "application/json",
                     "application/octet-stream", "text/plain", "", "; ;", OCI_MANIFEST + "; charset=utf-8",
                     OCI_MANIFEST.upper(), OCI_CONFIG, "multipart/form-data; boundary=x", OCI_INDEX + ";"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)


@st.composite
def content_ranges(draw: st.DrawFn, length: int) -> str:
    start = draw(st.sampled_from([0, len(UPLOAD_CHUNK), len(UPLOAD_CHUNK) + 1, 1, 2**63, 10**40]))
    return draw(st.one_of(
        st.just(f"{start}-{start + length - 1}"),  # consistent with the body
        st.just(f"{start}-{start + length - 1}"),
        st.just(f"{start + length - 1}-{start}"),  # reversed
        st.just(f"bytes={start}-{start + length - 1}"),
        st.just(f"{start}-{start + length - 1}/*"),
        st.just(f"0-{len(UPLOAD_CHUNK) + length - 1}"),  # overlaps what is stored
        st.just(f"{len(UPLOAD_CHUNK) - 1}-{len(UPLOAD_CHUNK) + length - 2}"),  # overlaps by one byte
        st.sampled_from(["", "0-", "-1", "-5-3", "a-b", "0-0", "0--1", "0-99999999999999999999999999",
                         "99999999999999999999999-99999999999999999999999", "0 - 3", "٠-٣", "bytes */*", "0-3,5-6",
                         "0-" + "9" * 5000, "9" * 5000 + "-" + "9" * 5000, f"0-{length - 1}/{'9' * 5000}"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
    ))


accepts = st.one_of(st.sampled_from([*MANIFEST_TYPES, "*/*", "application/*", "text/html", "", ",,", "*"]),
                    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"]


@st.composite
def route_requests(draw: st.DrawFn) -> tuple[list[str], str, list[str]]:
    """An endpoint: the methods it serves, a path to it (any repository name), its parameters."""
    name = draw(names)
    kind = draw(st.sampled_from(range(12)))
    if kind == 0:
        return ["GET", "HEAD"], draw(st.sampled_from(["/v2/", "/v2", "/v2//", "/v2/%2F"])), []
    if kind == 1:
        return ["GET"], "/v2/_catalog", ["n", "last"]
    if kind == 2:
        return ["GET"], f"/v2/{name}/tags/list", ["n", "last"]
    if kind in (3, 4, 5):
        return ["GET", "HEAD", "PUT", "PUT", "DELETE"], f"/v2/{name}/manifests/{draw(references)}", []
    if kind == 6:
        return ["GET", "HEAD", "DELETE"], f"/v2/{name}/blobs/{draw(digests)}", []
    if kind == 7:
        tail = draw(st.sampled_from(["/", "", "//"]))
        return ["POST"], f"/v2/{name}/blobs/uploads{tail}", ["digest", "mount", "from", "berth-direct"]
    if kind in (8, 9):
        return ["GET", "PATCH", "PUT", "DELETE"], f"/v2/{name}/blobs/uploads/{draw(upload_ids)}", ["digest"]
    if kind == 10:
        return ["GET"], f"/v2/{name}/blobs/uploads/{draw(upload_ids)}/parts", ["first", "count"]
    if draw(st.booleans()):
        return ["GET"], f"/v2/{name}/referrers/{draw(digests)}", ["artifactType"]
    return METHODS, "/v2/" + draw(st.one_of(junk_text, st.just(name))), list(PARAMETERS)


def maybe_percent_encode(draw: st.DrawFn, path: str) -> str:
    """Sometimes percent-encode the path after /v2/ (API Gateway decodes it again)."""
    if draw(st.integers(0, 7)) == 0:
        return "/v2/" + quote(path[4:], safe=draw(st.sampled_from(["/", "", ":/"])))
    return path


@st.composite
def requests_(draw: st.DrawFn) -> Sent:
    methods, path, parameters = draw(route_requests())
    method = draw(st.sampled_from(methods)) if draw(st.integers(0, 5)) else draw(st.sampled_from(METHODS))
    manifest_put = method == "PUT" and "/manifests/" in path
    if manifest_put:
        body = draw(manifest_bodies)
        if draw(st.integers(0, 2)) == 0:
            path = path.rsplit("/", 1)[0] + "/" + digest_of(body)  # a digest reference that matches the body
    elif method in ("PUT", "POST", "PATCH"):
        body = draw(st.one_of(blob_bodies, blob_bodies, any_bodies))
    else:
        body = draw(any_bodies) if draw(st.integers(0, 9)) == 0 else b""
    path = maybe_percent_encode(draw, path)
    headers: list[tuple[str, str]] = []
    if draw(st.integers(0, 3) if manifest_put else st.integers(0, 1)):
        headers.append(("Content-Type", draw(content_types)))
    if draw(st.booleans() if method in ("PATCH", "PUT") else st.integers(0, 5).map(lambda i: i == 0)):
        headers.append(("Content-Range", draw(content_ranges(len(body)))))
    if draw(st.integers(0, 3)) == 0:
        headers.extend(("Accept", a) for a in draw(st.lists(accepts, min_size=1, max_size=3)))
    if draw(st.integers(0, 9)) == 0:
        headers.append(("Authorization", draw(st.sampled_from(["Basic", "Bearer x", "Basic !!!", "junk"]))))
    headers.append(("Content-Length", str(len(body))))
    sent = Sent(method, path + draw(query_strings(parameters)), headers, body)
    assume(not sent.path.startswith(f"/v2/{SAFE}"))  # SAFE is never named (junk paths could, in theory)
    return sent


# ---- the properties ---------------------------------------------------------------------------

# BERTH_FUZZ_SCALE multiplies the examples, for a longer hunt than the suite's 250.
SCALE = float(os.environ.get("BERTH_FUZZ_SCALE", "1"))
# No example database: nothing is written into the working tree.
FUZZ = settings(deadline=None, database=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])


INDEX_BODY = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


@settings(FUZZ, max_examples=max(1, int(130 * SCALE)))
@given(batch=st.lists(requests_(), min_size=1, max_size=5))
# Failures the fuzz found (since fixed), kept as explicit examples.
@example(batch=[Sent("GET", "/v2/_catalog?n=²")])
@example(batch=[Sent("PUT", f"/v2/{TARGET}/manifests/{TAG}", [], b"[" * 100_000)])
@example(batch=[Sent("HEAD", "/v2/", [], b"\0" * 5 * 1024 * 1024)])
@example(batch=[Sent("PUT", "/v2/", [], b"\0" * 5 * 1024 * 1024)])
@example(batch=[Sent("PATCH", f"/v2/{TARGET}/blobs/uploads/{UPLOAD}",
                     [("Content-Range", "9" * 5000 + "-" + "9" * 5000)], b"x")])
def test_random_requests(worlds: Callable[[], tuple[World, LogCapture]], batch: list[Sent]) -> None:
    """A few random requests in a row (each is checked; stored data after all of them)."""
    world, logs = worlds()
    excused = Excused()
    context = []
    for sent in batch:
        sent = Sent(sent.method, world.fill(sent.target), sent.headers, sent.body)
        response = send(world, logs, sent)
        world.saw(response)
        excused.add(sent, response.status)
        context.append(f"{sent.describe()}\n-> {response.status}")
        if sent.method == "PUT" and response.status == 201 and "/manifests/" in sent.path:
            check_pushed(world, logs, sent, response)
    check_stored(world, excused, "\n".join(context))


@settings(FUZZ, max_examples=max(1, int(70 * SCALE)))
@given(doc=manifest_docs(), content_type=st.one_of(st.none(), content_types),
       reference=st.one_of(st.just(TAG), st.just("fresh"), st.just("@DIGEST@"), bad_tags, references))
@example(doc={**INDEX_BODY, "annotations": {"a": "\ud800"}}, content_type=None, reference=TAG)
@example(doc={**INDEX_BODY, "annotations": {"": ""}}, content_type=None, reference=TAG)
@example(doc=INDEX_BODY, content_type=None, reference=f"{TAG}%0A")
def test_manifest_pushes(worlds: Callable[[], tuple[World, LogCapture]], doc: Any, content_type: str | None,
                         reference: str) -> None:
    """Pushes of mangled manifests to TARGET: a 4xx, or a 201 whose manifest reads back byte-exact."""
    body = encode_json(doc)
    reference = digest_of(body) if reference == "@DIGEST@" else reference
    headers = [("Content-Type", content_type)] if content_type is not None else []
    sent = Sent("PUT", f"/v2/{TARGET}/manifests/{reference}", headers + [("Content-Length", str(len(body)))], body)
    world, logs = worlds()
    response = send(world, logs, sent)
    excused = Excused()
    excused.add(sent, response.status)
    if response.status == 201:
        check_pushed(world, logs, sent, response)
    check_stored(world, excused, f"{sent.describe()}\n-> {response.status}")


def check_pushed(world: World, logs: LogCapture, sent: Sent, response: Any) -> None:
    """A manifest the registry took reads back byte-exact by digest and reference, shows in the
    listings, and can be deleted again."""
    context = f"after\n{sent.describe()}\n-> {response.status}"
    _, params = find_route(sent.method, sent.path)
    repo, reference = params["name"], params["reference"]
    digest = response.header("Docker-Content-Digest")
    assert digest in (digest_of(sent.body), "sha512:" + hashlib.sha512(sent.body).hexdigest()), context
    for ref in {digest, reference}:
        assert manifest_bytes(world, repo, ref) == (200, sent.body), f"pushed manifest unreadable as {ref} {context}"
    listing = send(world, logs, Sent("GET", f"/v2/{repo}/tags/list"))
    assert listing.status == 200, f"{listing.body!r} {context}"
    if ":" not in reference:
        assert reference in listing.json()["tags"], f"tag missing from {listing.body!r} {context}"
    doc = json.loads(sent.body)
    subject = doc.get("subject") if isinstance(doc, dict) else None
    stored_type = world.client.head(f"/v2/{repo}/manifests/{digest}").header("Content-Type")
    if stored_type in (OCI_MANIFEST, OCI_INDEX) and isinstance(subject, dict):  # only OCI types have subjects
        referrers = send(world, logs, Sent("GET", f"/v2/{repo}/referrers/{subject['digest']}"))
        assert referrers.status == 200, f"{referrers.body!r} {context}"
        assert digest in [m.get("digest") for m in referrers.json()["manifests"]], f"not a referrer {context}"
    if (repo, digest) != (TARGET, MANIFEST_DIGEST):  # TARGET's own manifest stays for check_stored
        deleted = send(world, logs, Sent("DELETE", f"/v2/{repo}/manifests/{digest}"))
        assert deleted.status == 202, f"cannot delete what was pushed: {deleted.body!r} {context}"
        assert manifest_bytes(world, repo, digest)[0] == 404, context


@st.composite
def upload_steps(draw: st.DrawFn) -> list[Sent]:
    """Requests on one upload of TARGET, in random order: chunks, finishes, status, cancel."""
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        method = draw(st.sampled_from(["PATCH", "PATCH", "PATCH", "PUT", "PUT", "GET", "DELETE"]))
        body = draw(st.one_of(st.binary(max_size=64), st.sampled_from([b"", LAYER, UPLOAD_CHUNK]),
                              # chunks that fill 5 MiB S3 parts, together or with the pieces before them
                              st.sampled_from([MAX_REQUEST_BODY, 3 * 1024 * 1024]).map(lambda n: b"\x01" * n)))
        if method in ("GET", "DELETE"):
            body = b""
        headers = []
        if draw(st.booleans()):  # where the upload stands (@AT@), or anywhere
            headers.append(("Content-Range", draw(st.one_of(st.just("@AT@"), content_ranges(len(body))))))
        query = ""
        if method == "PUT":
            query = draw(st.one_of(
                st.just("?digest=@SO_FAR@"), st.just("?digest=@SO_FAR@"), st.just(""),
                st.builds(lambda d: "?" + urlencode({"digest": d}), digests)))
        steps.append(Sent(method, "@LOCATION@" + query, headers + [("Content-Length", str(len(body)))], body))
    return steps


@settings(FUZZ, max_examples=max(1, int(50 * SCALE)))
@given(steps=upload_steps(), fresh=st.booleans())
def test_upload_sequences(worlds: Callable[[], tuple[World, LogCapture]], steps: list[Sent], fresh: bool) -> None:
    """An upload driven by random PATCH/PUT/GET/DELETE: the registry's Range always counts the
    bytes it accepted, and a 201 stores exactly those bytes under the digest it names."""
    world, logs = worlds()
    if fresh:
        opened = world.client.post(f"/v2/{TARGET}/blobs/uploads/")
        location, accepted = opened.header("Location") or "", b""
    else:
        location, accepted = f"/v2/{TARGET}/blobs/uploads/{world.upload}", UPLOAD_CHUNK
    done = False
    context = []
    for step in steps:
        so_far = digest_of(accepted + step.body) if step.method == "PUT" else ""
        at = f"{len(accepted)}-{len(accepted) + len(step.body) - 1}"
        sent = Sent(step.method, step.target.replace("@LOCATION@", location).replace("@SO_FAR@", so_far),
                    [(k, v.replace("@AT@", at)) for k, v in step.headers], step.body)
        response = send(world, logs, sent)
        context.append(f"{sent.describe()}\n-> {response.status} Range={response.header('Range')}")
        if done:
            assert response.status >= 400, "\n".join(context)  # a finished or cancelled upload is gone
            continue
        if response.status >= 400:
            # A refused request leaves the upload as it was; only a finish whose digest does not
            # match the bytes discards it.
            now = world.client.get(location)
            context.append(f"  then GET -> {now.status} Range={now.header('Range')}")
            if now.status == 404:
                assert sent.method == "PUT" and b"DIGEST_INVALID" in response.body, "\n".join(context)
                done = True
            else:
                assert now.status == 204 and now.header("Range") == f"0-{max(len(accepted) - 1, 0)}", \
                    "\n".join(context)
            continue
        if sent.method == "PATCH" and response.status == 202:
            accepted += sent.body
            location = response.header("Location") or location
        if sent.method in ("PATCH", "GET") and response.status in (202, 204):
            assert response.header("Range") == f"0-{max(len(accepted) - 1, 0)}", "\n".join(context)
        if sent.method == "PUT" and response.status == 201:
            digest = response.header("Docker-Content-Digest")
            assert digest == digest_of(accepted + sent.body), "\n".join(context)
            assert fetch(world, TARGET, digest) == accepted + sent.body, "\n".join(context)
            done = True
        if sent.method == "DELETE" and response.status == 204:
            done = True
    check_stored(world, Excused(), "\n".join(context))
