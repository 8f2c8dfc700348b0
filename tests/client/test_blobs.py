"""The client's upload paths against a fake registry over real HTTP: skip, mount, one request,
direct parts (parallel, retried, renewed, resumed, verified), and chunks where direct uploads
are missing."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from berth.client import BlobPusher, ClientError, Descriptor, FileRange, Progress, RegistryClient, ResumeStore
from berth.client.progress import Meter
from tests.client.fake_registry import FakeRegistry, MiB, digest_of

REPO = "team/app"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("berth.client.direct.backoff", lambda attempt: 0.0)
    monkeypatch.setattr("berth.client.direct.POLL_FIRST", 0.01)


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with FakeRegistry().running() as running:
        yield running


class Counting(Progress):
    """Records what every meter was told."""

    def __init__(self) -> None:
        self.done: dict[str, int] = {}
        self.outcomes: dict[str, str] = {}
        self.lock = threading.Lock()

    def meter(self, digest: str, size: int) -> Meter:
        progress = self

        class Recorder(Meter):
            def advance(self, count: int) -> None:
                with progress.lock:
                    progress.done[digest] = progress.done.get(digest, 0) + count

            def close(self, outcome: str) -> None:
                progress.outcomes[digest] = outcome

        return Recorder()


def blob_file(tmp_path: Path, size: int) -> tuple[Descriptor, FileRange]:
    path = tmp_path / f"blob-{size}"
    data = os.urandom(size)
    path.write_bytes(data)
    return Descriptor(LAYER, digest_of(data), size), FileRange(path)


def parts_sent(fake: FakeRegistry) -> list[int]:
    """Part numbers of every PUT to the fake's storage, in order."""
    return [int(path.split("?")[0].rsplit("/", 1)[1]) for path in fake.requests("PUT", "^/s3/")]


def push(fake: FakeRegistry, blob: Descriptor, content: FileRange, *, resume: ResumeStore | None = None,
         progress: Progress | None = None, client: RegistryClient | None = None) -> str:
    repo = (client or RegistryClient(fake.host)).repository(REPO, push=True)
    with ThreadPoolExecutor(4) as pool:
        return BlobPusher(repo, pool, progress=progress, resume=resume).push(blob, content)


def test_a_small_blob_goes_in_one_request(fake: FakeRegistry, tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 300_000)
    assert push(fake, blob, content) == "pushed"
    assert fake.blobs[REPO][blob.digest] == content.path.read_bytes()
    assert fake.requests("POST") == [f"/v2/{REPO}/blobs/uploads/"]
    assert len(fake.requests("PUT", r"\?digest=")) == 1
    assert not fake.requests("PATCH")


def test_a_blob_the_repository_holds_is_not_sent(fake: FakeRegistry, tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 1000)
    fake.blobs[REPO] = {blob.digest: content.path.read_bytes()}
    progress = Counting()
    assert push(fake, blob, content, progress=progress) == "exists"
    assert not fake.requests("POST")
    assert progress.outcomes == {blob.digest: "exists"}


def test_a_blob_known_in_another_repository_is_mounted(fake: FakeRegistry, tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 1000)
    fake.blobs["team/base"] = {blob.digest: content.path.read_bytes()}
    client = RegistryClient(fake.host)
    client.remember(blob.digest, "team/base")
    assert push(fake, blob, content, client=client) == "mounted"
    assert fake.requests("POST") == [f"/v2/{REPO}/blobs/uploads/?mount={blob.digest}&from=team%2Fbase"
                                     .replace(":", "%3A")]
    assert client.holders(blob.digest) == ["team/base", REPO]


def test_a_refused_mount_is_cancelled_and_the_blob_sent(fake: FakeRegistry, tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 1000)
    client = RegistryClient(fake.host)
    client.remember(blob.digest, "team/gone")
    assert push(fake, blob, content, client=client) == "pushed"
    assert len(fake.requests("DELETE")) == 1
    assert blob.digest in fake.blobs[REPO]


def test_a_large_blob_goes_straight_to_storage_in_parts(fake: FakeRegistry, tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 5 * MiB + 12345)
    progress = Counting()
    assert push(fake, blob, content, progress=progress) == "pushed"
    assert fake.blobs[REPO][blob.digest] == content.path.read_bytes()
    assert fake.requests("POST") == [f"/v2/{REPO}/blobs/uploads/?berth-direct={blob.size}"]
    assert sorted(parts_sent(fake)) == [1, 2, 3, 4, 5, 6]
    assert len(fake.requests("PUT", r"\?digest=")) == 1
    assert fake.requests("GET", "/blobs/uploads/[a-f0-9]+$"), "it waits for verification"
    assert progress.done == {blob.digest: blob.size}


def test_parts_go_several_at_once(fake: FakeRegistry, tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 8 * MiB)
    fake.part_delay = 0.1
    assert push(fake, blob, content) == "pushed"
    assert fake.most_parts_at_once == 4  # the pool's size


def test_failed_and_refused_parts_are_sent_again_to_fresh_urls(fake: FakeRegistry, tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 5 * MiB)
    fake.part_faults = {2: [403], 4: [500, 503]}
    progress = Counting()
    assert push(fake, blob, content, progress=progress) == "pushed"
    assert fake.blobs[REPO][blob.digest] == content.path.read_bytes()
    assert parts_sent(fake).count(4) == 3
    assert fake.requests("GET", "/parts\\?first=2&count=4$"), "a refused URL is fetched again"
    assert progress.done == {blob.digest: blob.size}, "bytes of failed attempts count once"


def test_parts_the_registry_reports_missing_at_finish_are_sent_again(fake: FakeRegistry, tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 5 * MiB)
    fake.drop_on_finish = {2}
    assert push(fake, blob, content) == "pushed"
    assert parts_sent(fake).count(2) == 2
    assert len(fake.requests("PUT", r"\?digest=")) == 2
    assert fake.blobs[REPO][blob.digest] == content.path.read_bytes()


def test_bytes_failing_verification_fail_the_push(fake: FakeRegistry, tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 5 * MiB)
    fake.corrupt = True
    with pytest.raises(ClientError, match="not sha256:"):
        push(fake, blob, content)
    assert REPO not in fake.blobs


def test_an_interrupted_direct_upload_resumes_without_resending_parts(fake: FakeRegistry, tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 6 * MiB)
    store = ResumeStore(tmp_path / "cache")
    fake.part_faults = {5: [500] * 4}
    with pytest.raises(ClientError, match="part 5"):
        push(fake, blob, content, resume=store)
    assert store.get(fake.host, REPO, blob.digest) is not None
    sent_before = len(parts_sent(fake))

    progress = Counting()
    assert push(fake, blob, content, resume=store, progress=progress) == "pushed"
    assert parts_sent(fake)[sent_before:] == [5]
    assert len(fake.requests("POST")) == 1, "the same upload continued"
    assert fake.blobs[REPO][blob.digest] == content.path.read_bytes()
    assert progress.done == {blob.digest: blob.size}
    assert store.get(fake.host, REPO, blob.digest) is None


def test_a_push_interrupted_while_the_registry_verifies_only_waits_when_run_again(
        fake: FakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blob, content = blob_file(tmp_path, 5 * MiB)
    store = ResumeStore(tmp_path / "cache")
    fake.verify_polls = 1000
    with monkeypatch.context() as patched:
        patched.setattr("berth.client.direct.VERIFY_SECONDS", 0.0)
        patched.setattr("berth.client.direct.VERIFY_BYTES_PER_SECOND", 10**12)
        with pytest.raises(ClientError, match="did not verify"):
            push(fake, blob, content, resume=store)
    sent = len(parts_sent(fake))
    fake.verify_polls = 0
    for upload in fake.uploads.values():
        upload.polls_left = 0
    assert push(fake, blob, content, resume=store) == "pushed"
    assert len(parts_sent(fake)) == sent
    assert fake.blobs[REPO][blob.digest] == content.path.read_bytes()
    assert store.get(fake.host, REPO, blob.digest) is None


def test_a_failed_verification_is_forgotten_so_the_next_push_starts_afresh(fake: FakeRegistry, tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 5 * MiB)
    store = ResumeStore(tmp_path / "cache")
    fake.corrupt = True
    with pytest.raises(ClientError, match="not sha256:"):
        push(fake, blob, content, resume=store)
    assert store.get(fake.host, REPO, blob.digest) is None


def test_a_resumed_upload_the_registry_forgot_starts_over(fake: FakeRegistry, tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 5 * MiB)
    store = ResumeStore(tmp_path / "cache")
    from berth.client.resume import Resumable

    store.put(fake.host, REPO, blob.digest, Resumable(f"/v2/{REPO}/blobs/uploads/{'0' * 32}", "direct"))
    assert push(fake, blob, content, resume=store) == "pushed"
    assert fake.blobs[REPO][blob.digest] == content.path.read_bytes()


def test_without_direct_uploads_a_large_blob_goes_in_chunks(tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 10 * MiB)
    with FakeRegistry(direct=False).running() as fake:
        assert push(fake, blob, content) == "pushed"
        assert fake.blobs[REPO][blob.digest] == content.path.read_bytes()
        assert len(fake.requests("PATCH")) == 3
        assert not fake.requests("PUT", "^/s3/")


def test_an_interrupted_chunked_upload_resumes_at_the_registrys_offset(tmp_path: Path) -> None:
    blob, content = blob_file(tmp_path, 12 * MiB)  # three chunks
    store = ResumeStore(tmp_path / "cache")
    with FakeRegistry(direct=False).running() as fake:
        fake.patch_faults = {2: 500}
        with pytest.raises(ClientError, match="500"):
            push(fake, blob, content, resume=store)
        assert push(fake, blob, content, resume=store) == "pushed"
        assert fake.blobs[REPO][blob.digest] == content.path.read_bytes()
        assert len(fake.requests("PATCH")) == 1 + 1 + 2  # one taken, one refused; then the other two
        assert len(fake.requests("POST")) == 1
