"""A registry client over the in-process handler that sends what skopeo 1.9 sends (as the
local mode's access log records it): a push is `GET /v2/`, then per layer two HEADs, a POST,
one PATCH with the whole blob and a PUT `?digest=`, the config the same with one HEAD, then
the manifest PUT; a pull is `GET /v2/`, the manifest by tag, then every blob (a 307 to S3,
followed). Unexpected statuses raise: a figure from a failed request would be meaningless."""

from __future__ import annotations

import urllib.request

from bench.handler import InProcessLambda
from bench.images import Image
from berth.local.apigateway import GatewayResponse
from tests.e2e.images import OCI_MANIFEST, sha256

ACCEPT = ", ".join([
    OCI_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])


class UnexpectedResponse(Exception):
    pass


def expect(response: GatewayResponse, status: int, what: str) -> GatewayResponse:
    if response.status != status:
        raise UnexpectedResponse(f"{what}: {response.status}, expected {status}: {response.body[:300]!r}")
    return response


def location(response: GatewayResponse) -> str:
    found = response.header("Location")
    if not found:
        raise UnexpectedResponse(f"no Location in a {response.status}")
    return found


def with_query(target: str, query: str) -> str:
    return f"{target}{'&' if '?' in target else '?'}{query}"


class RegistryClient:
    def __init__(self, handler: InProcessLambda) -> None:
        self.handler = handler

    def version_check(self) -> None:
        expect(self.handler.request("GET", "/v2/"), 200, "GET /v2/")

    # ---- reads ---------------------------------------------------------------------------

    def get_manifest(self, repo: str, reference: str, method: str = "GET") -> GatewayResponse:
        return expect(self.handler.request(method, f"/v2/{repo}/manifests/{reference}", [("Accept", ACCEPT)]),
                      200, f"{method} manifest")

    def blob_head(self, repo: str, digest: str, status: int = 200) -> GatewayResponse:
        return expect(self.handler.request("HEAD", f"/v2/{repo}/blobs/{digest}"), status, "HEAD blob")

    def blob_redirect(self, repo: str, digest: str) -> str:
        """GET a blob: the registry answers 307 to a presigned S3 URL."""
        return location(expect(self.handler.request("GET", f"/v2/{repo}/blobs/{digest}"), 307, "GET blob"))

    def tags(self, repo: str) -> GatewayResponse:
        return expect(self.handler.request("GET", f"/v2/{repo}/tags/list"), 200, "tags list")

    def catalog(self) -> GatewayResponse:
        return expect(self.handler.request("GET", "/v2/_catalog"), 200, "catalog")

    @staticmethod
    def download(url: str) -> bytes:
        """What a client does with the 307: fetch the bytes from S3 (never through Lambda)."""
        with urllib.request.urlopen(url, timeout=60) as answer:  # noqa: S310 (moto on 127.0.0.1)
            data: bytes = answer.read()
        return data

    # ---- writes --------------------------------------------------------------------------

    def mount(self, repo: str, digest: str, source: str) -> None:
        target = f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}"
        expect(self.handler.request("POST", target), 201, "cross-repository mount")

    def start_upload(self, repo: str) -> str:
        return location(expect(self.handler.request("POST", f"/v2/{repo}/blobs/uploads/"), 202, "POST upload"))

    def push_blob(self, repo: str, data: bytes, heads: int = 1) -> str:
        """Skopeo's way: HEAD (404), POST, one PATCH with everything, PUT ?digest=."""
        digest = sha256(data)
        for _ in range(heads):
            self.blob_head(repo, digest, status=404)
        upload = self.start_upload(repo)
        upload = location(expect(self.handler.request("PATCH", upload, body=data), 202, "PATCH"))
        expect(self.handler.request("PUT", with_query(upload, f"digest={digest}")), 201, "PUT ?digest=")
        return digest

    def push_chunked(self, repo: str, data: bytes, chunk: int) -> str:
        """POST, a PATCH with Content-Range per chunk, PUT ?digest= with no body."""
        digest = sha256(data)
        upload = self.start_upload(repo)
        for start in range(0, len(data), chunk):
            piece = data[start : start + chunk]
            headers = [("Content-Range", f"{start}-{start + len(piece) - 1}")]
            upload = location(expect(self.handler.request("PATCH", upload, headers, piece), 202, "PATCH chunk"))
        expect(self.handler.request("PUT", with_query(upload, f"digest={digest}")), 201, "PUT ?digest=")
        return digest

    def push_direct(self, repo: str, data: bytes) -> str:
        """docs/direct-upload.md: POST ?berth-direct=<size>, the parts PUT straight to S3 by
        their presigned URLs, then the finish (202: the S3-event handler verifies later)."""
        digest = sha256(data)
        upload = location(expect(self.handler.request("POST", f"/v2/{repo}/blobs/uploads/?berth-direct={len(data)}"),
                                 202, "POST ?berth-direct="))
        listing = expect(self.handler.request("GET", f"{upload}/parts"), 200, "GET parts").json()
        size = listing["partSize"]
        for entry in listing["urls"]:
            part = data[(entry["number"] - 1) * size : entry["number"] * size]
            # A typed body: urllib would call it a form, which moto's server then parses as one.
            request = urllib.request.Request(entry["url"], data=part, method="PUT",
                                             headers={"Content-Type": "application/octet-stream"})
            with urllib.request.urlopen(request, timeout=120) as sent:
                if sent.status != 200:
                    raise UnexpectedResponse(f"S3 refused part {entry['number']}")
        expect(self.handler.request("PUT", with_query(upload, f"digest={digest}")), 202, "PUT ?digest= (direct)")
        return digest

    def put_manifest(self, repo: str, reference: str, manifest: bytes) -> None:
        expect(self.handler.request("PUT", f"/v2/{repo}/manifests/{reference}", [("Content-Type", OCI_MANIFEST)],
                                    manifest), 201, "PUT manifest")

    # ---- whole images, as skopeo copies them ---------------------------------------------

    def push_image(self, repo: str, tag: str, image: Image) -> None:
        self.version_check()
        for blob in image.layers:
            self.push_blob(repo, blob, heads=2)  # skopeo 1.9 HEADs each layer twice
        self.push_blob(repo, image.config, heads=1)
        self.put_manifest(repo, tag, image.manifest)

    def pull_image(self, repo: str, tag: str, image: Image) -> int:
        """Returns the bytes fetched from S3, checked against the image."""
        self.version_check()
        self.get_manifest(repo, tag)
        fetched = 0
        for blob in image.blobs:
            data = self.download(self.blob_redirect(repo, sha256(blob)))
            if data != blob:
                raise UnexpectedResponse("a pulled blob differs from the pushed one")
            fetched += len(data)
        return fetched
