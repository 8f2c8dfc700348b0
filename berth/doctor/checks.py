"""The checks `berth doctor` runs, in order, each returning its verdict. They push small blobs
and one manifest into a scratch repository (`Doctor.repository`) and note what they leave
there, so that `cleanup` removes it; nothing is tagged."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from berth.client import ClientError, Credentials, Manifest, RegistryClient, RegistryError, Repository
from berth.client.auth import parse_challenge
from berth.client.blobs import DEFAULT_CHUNK_MAX
from berth.client.manifests import sha256_digest
from berth.doctor.verdicts import Verdict, failed, passed, skipped, waiting
from berth.local.apigateway import LAMBDA_PAYLOAD_LIMIT
from chalicelib.errors import Oci

BODY_TOO_LARGE = Oci.BODY_TOO_LARGE

OCTETS = {"Content-Type": "application/octet-stream"}
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
# Bodies whose Content-Type API Gateway could treat as text, and so re-encode, if the API did
# not declare every type binary; none means no Content-Type at all (python-dxf sends that).
CONTENT_TYPES = (None, "application/octet-stream", "text/plain; charset=utf-8", "application/json",
                 "application/x-www-form-urlencoded", "application/vnd.oci.image.layer.v1.tar+gzip")
CHUNK = 64 * 1024
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
REDIRECTS = (301, 302, 303, 307, 308)
TIMEOUT = (15, 120)
# The scheduled functions' Lambda timeout: a run started longer ago than this and not finished
# was cut off.
JOB_TIMEOUT = 900
REDEPLOY = "run `make deploy` again for this stage, then `berth doctor` again"


@dataclass
class Doctor:
    """One run: where, as whom, and what it has left in the registry so far."""

    client: RegistryClient
    repository: str
    verify_seconds: float = 60.0
    credentials: Credentials | None = None
    blobs: list[str] = field(default_factory=list)  # digests linked in the repository
    manifests: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)  # locations of uploads left open
    _report: dict[str, Any] | None = None
    _report_error: str | None = None

    @property
    def scope(self) -> str:
        """Every check's access in one token: push and delete in the scratch repository, and the
        registry-wide report."""
        return f"repository:{self.repository}:pull,push,delete registry:catalog:*"

    @property
    def repo(self) -> Repository:
        repository = self.client.repository(self.repository, push=True)
        repository.scope = self.scope  # one token for everything the doctor does
        return repository

    def request(self, method: str, path: str, expect: tuple[int, ...], **kwargs: Any) -> requests.Response:
        return self.client.session.request(method, path, scope=self.scope, expect=expect, **kwargs)

    def push_blob(self, data: bytes, headers: dict[str, str] | None = None) -> str:
        """A monolithic push (POST ?digest= with the body), as containerd and oras do."""
        digest = sha256_digest(data)
        self.request("POST", f"/v2/{self.repository}/blobs/uploads/", (201,), params={"digest": digest}, body=data,
                     headers=OCTETS if headers is None else headers).close()
        self.blobs.append(digest)
        return digest

    def report(self) -> dict[str, Any]:
        """The registry's report on itself (POST /v2/_berth/doctor), fetched once."""
        if self._report is None and self._report_error is None:
            try:
                response = self.request("POST", "/v2/_berth/doctor", (200,))
                self._report = dict(response.json())
            except (ClientError, ValueError) as error:
                self._report_error = str(error)
        if self._report is None:
            raise NoReport(self._report_error or "no report")
        return self._report


class NoReport(Exception):
    pass


def _bytes(size: int) -> str:
    return f"{size:,} bytes"


# ---- the checks, in the order they run -------------------------------------------------------


def auth(doctor: Doctor) -> Verdict:
    """GET /v2/ without credentials: the challenge must arrive under its own name (a REST API
    renames a Lambda's WWW-Authenticate; only the gateway responses carry it), and what it
    points at (a token from the realm, or Basic) must open /v2/."""
    base = doctor.client.session.base
    bare = doctor.client.session.http.get(f"{base}/v2/", timeout=TIMEOUT, verify=doctor.client.session.verify)
    if bare.status_code == 200:
        return skipped("auth", "auth is off: GET /v2/ answered 200 without credentials")
    header = bare.headers.get("WWW-Authenticate")
    renamed = bare.headers.get("x-amzn-Remapped-WWW-Authenticate")
    if bare.status_code != 401 or not header:
        seen = f"GET /v2/ without credentials: {bare.status_code}, " + (
            f"challenge only as x-amzn-Remapped-WWW-Authenticate: {renamed}" if renamed else "no WWW-Authenticate")
        return failed("auth", seen, "docker cannot log in without the challenge: the API must answer 401 itself with "
                      "its gateway responses (UNAUTHORIZED, ACCESS_DENIED in x-amazon-apigateway-gateway-responses, "
                      f"berth/deploy/api.py); {REDEPLOY}")
    challenge = parse_challenge(header)
    scheme = challenge.scheme if challenge else "?"
    try:
        doctor.request("GET", "/v2/", (200,)).close()
    except ClientError as error:
        fix = ("pass --user USER and --password-stdin (a user of this registry: `berth user add`)"
               if doctor.credentials is None else
               "check the user's password, or CI token, and that it is not expired (`berth user`, `berth token`)")
        return failed("auth", f"401 with WWW-Authenticate: {header}; then: {error}", fix)
    opened = "a token from its realm opened /v2/" if scheme == "bearer" else "Basic credentials opened /v2/"
    return passed("auth", f"401 with WWW-Authenticate: {header}; {opened} (200)")


def chunked_patch(doctor: Doctor) -> Verdict:
    """A PATCH with `Transfer-Encoding: chunked` and no Content-Length, as docker and podman send
    every layer: the registry must receive every byte (the digest proves it)."""
    data = os.urandom(1024 * 1024 + 3)
    digest = sha256_digest(data)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), CHUNK):
            yield data[start:start + CHUNK]

    fix = ("API Gateway did not hand the chunked body to the function intact: docker and podman cannot push "
           "here. Push with `berth push`, or through `berth relay` (it sends Content-Length), and report it")
    try:
        start = doctor.repo.start_upload()
        doctor.uploads.append(start.location)
        patched = doctor.request("PATCH", start.location, (202,), body=chunks, headers=OCTETS)
        patched.close()
        location = patched.headers.get("Location") or start.location
        doctor.uploads[-1] = location
        if patched.headers.get("Range") != f"0-{len(data) - 1}":
            return failed("chunked-patch", f"{_bytes(len(data))} sent chunked; the upload holds "
                          f"Range {patched.headers.get('Range')}", fix)
        doctor.repo.finish_upload(location, digest)
        doctor.uploads.remove(location)
    except RegistryError as error:
        return failed("chunked-patch", f"{_bytes(len(data))} sent chunked: {error}", fix)
    doctor.blobs.append(digest)
    return passed("chunked-patch", f"{_bytes(len(data))} in {-(-len(data) // CHUNK)} chunks without Content-Length: "
                  f"Range 0-{len(data) - 1}, digest verified by the finish (201)")


def binary_bodies(doctor: Doctor) -> Verdict:
    """Random bytes (not UTF-8) under every kind of Content-Type: the digest the registry
    verifies fails if any byte was re-encoded on the way."""
    altered = []
    for content_type in CONTENT_TYPES:
        data = os.urandom(64 * 1024)
        try:
            doctor.push_blob(data, {"Content-Type": content_type} if content_type else {})
        except RegistryError as error:
            altered.append(f"{content_type or 'none'}: {error.status} {error.code or ''}".strip())
    names = ", ".join(t or "none" for t in CONTENT_TYPES)
    if altered:
        return failed("binary-bodies", f"64 KiB of random bytes refused under {'; '.join(altered)}",
                      "the API must declare every body binary (x-amazon-apigateway-binary-media-types: */*, "
                      f"berth/deploy/api.py), or bodies arrive re-encoded as text; {REDEPLOY}")
    return passed("binary-bodies", f"64 KiB of random bytes under each Content-Type ({names}): every digest verified")


def manifest_bytes(doctor: Doctor) -> Verdict:
    """A manifest with non-ASCII text and unusual whitespace must be stored and served byte for
    byte: its digest is the hash of exactly those bytes."""
    config = doctor.push_blob(CONFIG)
    layer_bytes = os.urandom(2048)
    layer = doctor.push_blob(layer_bytes)
    text = ('{\n   "schemaVersion": 2,\n   "mediaType": "%s",\n   "config": {"mediaType": '
            '"application/vnd.oci.image.config.v1+json", "digest": "%s", "size": %d},\n   "layers": [ {"mediaType": '
            '"application/vnd.oci.image.layer.v1.tar", "digest": "%s", "size": %d} ],\n   "annotations": '
            '{"org.berth.doctor": "ünïcødé ✓ – \\u00e9   %s"}\n}\n')
    data = (text % (MANIFEST_TYPE, config, len(CONFIG), layer, len(layer_bytes), time.time())).encode()
    manifest = Manifest(data, MANIFEST_TYPE)
    fix = "manifests must pass through API Gateway as text, unchanged; look at the API's binary media types " \
          f"and the function's response encoding; {REDEPLOY}"
    try:
        stored = doctor.repo.put_manifest(manifest.digest, manifest)
        doctor.manifests.append(stored)
        served = doctor.repo.get_manifest(stored)
    except ClientError as error:
        return failed("manifest-bytes", f"a {len(data):,}-byte manifest with non-ASCII text: {error}", fix)
    if served.data != data:
        return failed("manifest-bytes", f"stored {manifest.digest}, served {len(served.data)} different bytes", fix)
    return passed("manifest-bytes", f"a {len(data):,}-byte manifest with non-ASCII text and odd whitespace came back "
                  f"byte for byte ({stored})")


def size_limits(doctor: Doctor) -> Verdict:
    """A body just over the registry's limit gets its own 413 with the way through (code
    `UNSUPPORTED`, which docker takes as final and shows at once, docs/api.md); one past
    Lambda's event limit never reaches it, and API Gateway answers 413."""
    start = doctor.repo.start_upload()
    doctor.uploads.append(start.location)
    limit = start.chunk_max or DEFAULT_CHUNK_MAX  # Berth's documented limit, when none is advertised
    fix = "the function must refuse bodies over its limit with 413 UNSUPPORTED and the way through (chalicelib/api/" \
          "dispatch.py); API Gateway refuses larger ones itself"
    try:
        over = doctor.request("PATCH", start.location, (413,), body=bytes(limit + 1),
                              headers={**OCTETS, "Content-Range": f"0-{limit}"})
        error = (over.json().get("errors") or [{}])[0]
        if error.get("code") != BODY_TOO_LARGE.code or "berth push" not in str(error.get("message")):
            return failed("size-limits", f"{_bytes(limit + 1)}: 413 with {over.text[:200]}", fix)
        huge = doctor.request("PATCH", start.location, (413,), body=bytes(LAMBDA_PAYLOAD_LIMIT + 1),
                              headers={**OCTETS, "Content-Range": f"0-{LAMBDA_PAYLOAD_LIMIT}"})
    except (RegistryError, ValueError) as problem:
        return failed("size-limits", f"over the {_bytes(limit)} limit: {problem}", fix)
    return passed("size-limits", f"{_bytes(limit + 1)}: 413 {BODY_TOO_LARGE.code} naming `berth push`; "
                  f"{_bytes(LAMBDA_PAYLOAD_LIMIT + 1)}: 413 {' '.join(huge.text.split())[:80]}")


def blob_redirect(doctor: Doctor) -> Verdict:
    """A blob GET answers with a redirect to S3, and the presigned URL works on its own: no
    Authorization header (a client must not send the registry's credentials to S3)."""
    data = os.urandom(32 * 1024)
    digest = doctor.push_blob(data)
    response = doctor.request("GET", f"/v2/{doctor.repository}/blobs/{digest}", (200, *REDIRECTS))
    response.close()
    if response.status_code not in REDIRECTS or not response.headers.get("Location"):
        return failed("blob-redirect", f"GET blob answered {response.status_code} without a redirect",
                      "Berth answers blob GETs with 307 to a presigned S3 URL; something in front of it differs")
    location = urljoin(response.url, response.headers["Location"])
    where = urlsplit(location)
    expires = parse_qs(where.query).get("X-Amz-Expires", ["?"])[0]
    fetched = requests.get(location, timeout=TIMEOUT, verify=doctor.client.session.verify)
    if fetched.status_code != 200 or fetched.content != data:
        return failed("blob-redirect", f"{response.status_code} to {where.scheme}://{where.netloc}; the presigned URL "
                      f"answered {fetched.status_code} {fetched.text[:160]}",
                      "S3 refused the URL the function signed: its role needs s3:GetObject on blobs/*, and the URL "
                      "dies with the credentials that signed it (`presign` in the registry's report)")
    return passed("blob-redirect", f"{response.status_code} to {where.scheme}://{where.netloc} (X-Amz-Expires="
                  f"{expires}); fetched without Authorization: 200, {_bytes(len(data))} identical")


def direct_upload(doctor: Doctor, sleep: Callable[[float], None] = time.sleep) -> Verdict:
    """A direct upload (docs/direct-upload.md): the part goes straight to S3, S3 notifies the
    verify queue, and the verifier makes the blob visible within `verify_seconds`."""
    data = os.urandom(1024 * 1024 + 7)
    digest = sha256_digest(data)
    fix = ("verify_blob did not promote the blob: look at the verify queue and its dead-letter queue "
           "(VerifyDeadLetterQueueUrl), the bucket's notification to the queue, and verify_blob's logs")
    try:
        start = doctor.repo.start_upload(direct_size=len(data))
        if not start.direct:
            return failed("direct-upload", "POST ?berth-direct= opened a plain upload",
                          "the registry does not offer direct uploads: it is not Berth, or an old one")
        doctor.uploads.append(start.location)
        listing = doctor.repo.upload_parts(start.location)
        for number, url in sorted(listing.urls.items()):
            part = data[(number - 1) * listing.part_size:number * listing.part_size]
            sent = requests.put(url, data=part, timeout=TIMEOUT, verify=doctor.client.session.verify)
            if sent.status_code != 200:
                return failed("direct-upload", f"S3 refused part {number}: {sent.status_code} {sent.text[:160]}",
                              "the function's role needs s3:PutObject on direct/*; the URL dies with its credentials")
        doctor.repo.finish_upload(start.location, digest)
        finished = time.monotonic()
        while doctor.repo.blob_size(digest) is None:
            if time.monotonic() - finished > doctor.verify_seconds:
                return failed("direct-upload", f"{_bytes(len(data))} sent to S3 and finished; still unverified after "
                              f"{doctor.verify_seconds:.0f} s", fix)
            try:
                doctor.repo.upload_verification(start.location)  # 400 DIGEST_INVALID when the check failed
            except RegistryError as error:
                if error.status != 404:  # 404: verified since the HEAD, and the upload is over
                    raise
            sleep(0.5)
    except ClientError as error:
        return failed("direct-upload", f"{_bytes(len(data))} straight to S3: {error}", fix)
    doctor.uploads.remove(start.location)
    doctor.blobs.append(digest)
    took = time.monotonic() - finished
    return passed("direct-upload", f"{_bytes(len(data))} in {listing.part_count} part(s) straight to S3; verified and "
                  f"linked {took:.1f} s after the finish (allowed {doctor.verify_seconds:.0f} s)")


def _reported(doctor: Doctor, check: str) -> dict[str, Any] | Verdict:
    try:
        return doctor.report()
    except NoReport as error:
        return failed(check, f"POST /v2/_berth/doctor: {error}",
                      "the registry has no report for the doctor: it is not Berth, or older than this berth; "
                      f"{REDEPLOY}")


def resumable_sha256(doctor: Doctor) -> Verdict:
    report = _reported(doctor, "resumable-sha256")
    if isinstance(report, Verdict):
        return report
    runtime = report["runtime"]
    seen = (f"Python {runtime['python']} on {runtime['architecture']}"
            + (f", started {runtime['initialization']}" if runtime.get("initialization") else ""))
    if not runtime["resumable_sha256"]:
        return failed("resumable-sha256", f"{seen}: libcrypto's SHA256_* functions are missing",
                      "every finish reads its blob back from S3 to hash it (slower, and big chunked blobs may not "
                      "finish within the API's time): deploy a runtime whose OpenSSL exports them "
                      "(lambda_python_version, docs/deploy.md)")
    return passed("resumable-sha256", f"{seen}: the upload hash state is saved between requests")


def events(doctor: Doctor) -> Verdict:
    report = _reported(doctor, "events")
    if isinstance(report, Verdict):
        return report
    state = report["events"]
    if not state["configured"]:
        return skipped("events", "not configured (BERTH_EVENT_BUS is unset: docs/events.md)")
    if not state["accepted"]:
        return failed("events", f"EventBridge refused a test event: {state.get('error')}",
                      "the bus in BERTH_EVENT_BUS must exist, and the API function's role needs events:PutEvents on "
                      f"it (make deploy grants it); a bus in another account needs a resource policy; {REDEPLOY}")
    return passed("events", "EventBridge accepted a `Registry Checked` test event on the configured bus")


def schedules(doctor: Doctor) -> Verdict:
    """Each scheduled function's last run, as the function recorded it."""
    report = _reported(doctor, "schedules")
    if isinstance(report, Verdict):
        return report
    now = int(report["now"])
    seen: list[str] = []
    problems: list[str] = []
    pending: list[str] = []
    for function, run in report["schedules"].items():
        period = int(run["period"])
        if not run["ran"]:
            pending.append(function)
            seen.append(f"{function}: no run yet")
            continue
        started, finished = int(run["started"]), run.get("finished")
        if finished is None or started > int(finished):
            seen.append(f"{function}: started {now - started} s ago, not finished")
            (problems if now - started > JOB_TIMEOUT else pending).append(function)
            continue
        seen.append(f"{function}: last ended {now - int(finished)} s ago" +
                    (f", failing with {run['failed']}" if run.get("failed") else ""))
        if run.get("failed") or now - int(finished) > 2 * period:
            problems.append(function)
    evidence = "; ".join(seen)
    if problems:
        return failed("schedules", evidence, f"look at the logs of {', '.join(problems)} (CloudWatch, "
                      "/aws/lambda/berth-<stage>-*) and at their EventBridge rules")
    if pending:
        return waiting("schedules", evidence, "they run hourly, the first time within an hour of `make deploy`: run "
                       "`berth doctor` again later")
    return passed("schedules", evidence)


def cleanup(doctor: Doctor) -> Verdict:
    """Remove what the checks left: the manifest, the repository's links to the blobs, uploads
    still open. The blobs' bytes go when the collector finds them unreferenced."""
    switched_off: list[str] = []
    errors: list[str] = []
    for kind, paths in (("manifests", [f"/v2/{doctor.repository}/manifests/{d}" for d in doctor.manifests]),
                        ("blobs", [f"/v2/{doctor.repository}/blobs/{d}" for d in dict.fromkeys(doctor.blobs)]),
                        ("uploads", list(doctor.uploads))):
        for path in paths:
            try:
                response = doctor.request("DELETE", path, (202, 204, 404, 405))
                response.close()
                if response.status_code == 405:
                    switched_off.append(kind)
            except ClientError as error:
                errors.append(str(error))
    counts = (f"{len(doctor.manifests)} manifest(s), {len(set(doctor.blobs))} blob link(s), "
              f"{len(doctor.uploads)} open upload(s) in {doctor.repository}")
    if errors:
        return failed("cleanup", f"removing {counts}: {'; '.join(errors[:3])}",
                      "remove them by hand, or let retention rules and `berth gc` do it")
    if switched_off:
        return skipped("cleanup", f"deletes of {', '.join(sorted(set(switched_off)))} are switched off here "
                       f"(BERTH_DELETE_*): {counts} stay until retention rules or `berth gc` remove them")
    return passed("cleanup", f"removed {counts}; the blobs' bytes go with the next collection, and the repository's "
                  "name stays in the catalog")


CHECKS: tuple[Callable[[Doctor], Verdict], ...] = (
    auth, chunked_patch, binary_bodies, manifest_bytes, size_limits, blob_redirect, direct_upload,
    resumable_sha256, events, schedules,
)
