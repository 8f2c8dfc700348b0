"""`berth gc` when another collection holds the lease: the purge has run all the same, and it
says what the purge freed before saying the collection did not run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from berth.cli import main
from tests.api.lifecycle_support import Lab
from tests.helpers import start_upload

REPO = "team/app"


@pytest.fixture
def lab(registry: Any, aws: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    saved = dict(os.environ)  # the commands take their settings through the environment
    yield Lab(registry, aws, client, monkeypatch)
    os.environ.clear()
    os.environ.update(saved)


def test_gc_reports_the_purge_it_did_when_the_collection_is_busy(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    location = start_upload(lab.client, REPO)
    assert lab.client.patch(location, body=b"abandoned").status == 202
    lab.backdate(f"upload#{location.rsplit('/', 1)[1]}", "upload", 2, "updated")
    now = int(lab.clock())
    lab.jobs.store.claim("the scheduled one", now, now + 600)
    status = main(["gc", "--upload-max-age-hours", "1", "--table", lab.table, "--bucket", lab.bucket,
                   "--region", "us-east-1"])
    out = capsys.readouterr().out
    assert status == 1
    assert out.splitlines()[-1] == ("freed: 1 abandoned uploads (9 bytes); nothing collected: another collection "
                                    "is running (the scheduled one?); try again later")
    assert [u for u in lab.jobs.store.scan(("upload#",)) for u in u[0]] == []
