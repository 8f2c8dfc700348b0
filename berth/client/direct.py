"""Berth's direct upload (docs/direct-upload.md): the parts of a large blob go straight to S3
through presigned URLs, several at a time, each read from its offset in the source; then the
registry finishes the upload and verifies the bytes while the client polls."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import Executor, Future, wait
from typing import Any

import requests

from berth.client.content import Body, Content
from berth.client.errors import ClientError, RegistryError
from berth.client.progress import Meter
from berth.client.registry import PartListing, Repository
from berth.client.session import backoff
from berth.client.tasks import gather

PART_ATTEMPTS = 4
URL_WINDOW = 1000  # the most part URLs one listing hands out
# How long verification may take: a fixed allowance plus time to stream the blob once.
VERIFY_SECONDS = 120.0
VERIFY_BYTES_PER_SECOND = 20 * 1024 * 1024
POLL_FIRST, POLL_MAX = 0.1, 2.0


class _PartUrls:
    """Presigned URLs by part number, fetched a window at a time and fetched again when S3
    refuses one (they expire, by default after 15 minutes)."""

    def __init__(self, repo: Repository, location: str, count: int, known: dict[int, str]) -> None:
        self._repo, self._location, self._count = repo, location, count
        self._urls = dict(known)
        self._lock = threading.Lock()

    def get(self, number: int) -> str:
        with self._lock:
            if number not in self._urls:
                self._fetch(number)
            return self._urls[number]

    def renew(self, number: int, stale: str) -> None:
        with self._lock:
            if self._urls.get(number) == stale:  # not renewed by another part meanwhile
                self._fetch(number)

    def _fetch(self, first: int) -> None:
        listing = self._repo.upload_parts(self._location, first, min(URL_WINDOW, self._count - first + 1))
        self._urls.update(listing.urls)
        if first not in self._urls:
            raise ClientError(f"the registry gave no URL for part {first}")


class DirectUpload:
    """Sends one blob's parts given the upload's part listing, finishes, and waits for the
    registry's verification. Parts not yet started are dropped once `stop` is set (the push
    failed elsewhere, or was interrupted)."""

    def __init__(self, repo: Repository, location: str, listing: PartListing, content: Content,
                 digest: str, size: int, pool: Executor, meter: Meter, stop: threading.Event) -> None:
        if not (listing.part_count - 1) * listing.part_size < size <= listing.part_count * listing.part_size:
            raise ClientError(f"the registry split {size} bytes into {listing.part_count} parts "
                              f"of {listing.part_size}: that does not add up")
        self.repo, self.location, self.listing = repo, location, listing
        self.content, self.digest, self.size = content, digest, size
        self.pool, self.meter, self.stop = pool, meter, stop
        self.urls = _PartUrls(repo, location, listing.part_count, listing.urls)

    def _span(self, number: int) -> tuple[int, int]:
        offset = (number - 1) * self.listing.part_size
        return offset, min(self.listing.part_size, self.size - offset)

    def _missing(self) -> list[int]:
        """Parts S3 does not hold yet at their full size (the others a resumed push skips)."""
        return [n for n in range(1, self.listing.part_count + 1)
                if self.listing.uploaded.get(n) != self._span(n)[1]]

    def run(self) -> None:
        missing = self._missing()
        self.meter.advance(self.size - sum(self._span(n)[1] for n in missing))
        self._send(missing)
        try:
            response = self.repo.finish_upload(self.location, self.digest)
        except RegistryError as error:
            # The registry found parts missing after all (say, a part S3 dropped): send them once more.
            again = _part_numbers(error.detail) if error.code == "BLOB_UPLOAD_INVALID" else []
            if not again:
                raise
            self.meter.advance(-sum(self._span(n)[1] for n in again))
            self._send(again)
            response = self.repo.finish_upload(self.location, self.digest)
        if response.status_code == 202:
            await_verification(self.repo, self.location, self.digest, self.size, self.stop)

    def _send(self, numbers: Iterable[int]) -> None:
        futures: list[Future[None]] = [self.pool.submit(self._send_part, n) for n in numbers]
        try:
            gather(futures)
        finally:
            wait(futures)  # no part of this blob still reading its file after we return

    def _send_part(self, number: int) -> None:
        offset, length = self._span(number)
        outcome = ""
        for attempt in range(PART_ATTEMPTS):
            if self.stop.is_set():
                raise ClientError("stopped")
            if attempt:
                time.sleep(backoff(attempt))
            url = self.urls.get(number)
            body = Body(self.content, offset, length, self.meter.advance)
            try:
                response = self.repo.client.session.external("PUT", url, body=body)
                response.close()
                if response.status_code == 200:
                    return
                outcome = f"S3 answered {response.status_code}"
                if response.status_code in (400, 403):
                    self.urls.renew(number, url)  # expired (or otherwise refused): a fresh URL
            except requests.RequestException as error:
                outcome = type(error).__name__  # never str(error): it would show the signed URL
            finally:
                body.close()
            self.meter.advance(-body.sent)
        raise ClientError(f"part {number} of {self.digest} failed {PART_ATTEMPTS} times ({outcome})")


class VerificationFailed(ClientError):
    """The registry found that the bytes sent are not the blob: that upload is over."""


def await_verification(repo: Repository, location: str, digest: str, size: int,
                       stop: threading.Event | None = None) -> None:
    """Poll a finished direct upload until the registry has checked the bytes: 204 while it
    works, 404 once done (then the blob must be there), DIGEST_INVALID when they did not match.
    Gives up when `stop` is set (a push run again waits for the same check)."""
    deadline = time.monotonic() + VERIFY_SECONDS + size / VERIFY_BYTES_PER_SECOND
    delay = POLL_FIRST
    while True:
        try:
            verification = repo.upload_verification(location)
        except RegistryError as error:
            if error.code == "DIGEST_INVALID":
                raise VerificationFailed(f"the registry found that the bytes sent are not {digest}") from error
            if error.status != 404:
                raise
            if repo.blob_size(digest) is None:
                raise ClientError(f"the upload of {digest} ended without the blob") from error
            return
        if verification != "pending":
            raise ClientError(f"the upload of {digest} is not finished, so nothing is being verified")
        if time.monotonic() > deadline:
            raise ClientError(f"the registry did not verify {digest} in time")
        if stop is not None and stop.is_set():
            raise ClientError("stopped")
        time.sleep(delay)
        delay = min(delay * 2, POLL_MAX)


def _part_numbers(detail: Any) -> list[int]:
    """The parts to send again from a refused finish's `detail`: `missing` and `wrong_size`."""
    if not isinstance(detail, dict):
        return []
    numbers = [n for key in ("missing", "wrong_size") for n in detail.get(key) or []]
    return sorted({n for n in numbers if isinstance(n, int)})
