"""Shared by the lifecycle tests: the registry under a lifecycle configuration, a clock the
jobs read (stored timestamps stay real), pushes and digest-exact pulls, raw table reads."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.lifecycle.collector import Collector, Run
from chalicelib.lifecycle.jobs import Housekeeping, never
from chalicelib.lifecycle.policy import HOUR, Lifecycle, parse_policies
from chalicelib.manifests import mediatypes as mt
from chalicelib.registry import Registry
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.keys import tag_sk
from chalicelib.storage.manifests import manifest_record
from chalicelib.storage.table import from_item, to_item
from tests.helpers import bucket_keys, digest_of, fetch_blob, manifest_body


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def later(self, hours: float) -> None:
        self.offset += hours * HOUR


class Serialized:
    """A boto3 client whose calls run one at a time. moto applies a request in several steps
    without a lock, where DynamoDB and S3 apply each atomically: threads that share moto need
    this to race the way they would against AWS (between requests, never inside one)."""

    def __init__(self, client: Any) -> None:
        self._client, self._lock = client, threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                with self._lock:
                    return attribute(*args, **kwargs)
            finally:
                # Let a thread waiting for moto go first: otherwise the one that just finished
                # a request usually takes the lock again, and requests of different threads
                # seldom interleave.
                time.sleep(0.0002)

        return call


class SerializedAws(AwsClients):
    def __init__(self, aws: AwsClients) -> None:
        super().__init__()
        self._serialized = {"dynamodb": Serialized(aws.dynamodb), "s3": Serialized(aws.s3)}

    @property
    def dynamodb(self) -> Any:
        return self._serialized["dynamodb"]

    @property
    def s3(self) -> Any:
        return self._serialized["s3"]


class Interjecting(AwsClients):
    """Clients that run a competing action once, just before a chosen DynamoDB call: the
    deterministic form of a race between what a request read and what it writes."""

    def __init__(self, aws: AwsClients) -> None:
        super().__init__()
        self._aws = aws
        self._hooks: list[tuple[str, Callable[[dict[str, Any]], bool], Callable[[], None]]] = []

    def before(self, operation: str, when: Callable[[dict[str, Any]], bool], then: Callable[[], None]) -> None:
        """Run `then` before the first call of `operation` (e.g. "transact_write_items") whose
        arguments satisfy `when`; the calls `then` makes are not watched."""
        self._hooks.append((operation, when, then))

    @property
    def dynamodb(self) -> Any:
        return _Watched(self._aws.dynamodb, self._hooks)

    @property
    def s3(self) -> Any:
        return self._aws.s3


class _Watched:
    def __init__(self, client: Any, hooks: list[tuple[str, Callable[[dict[str, Any]], bool], Callable[[], None]]]):
        self._client, self._hooks = client, hooks

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or not any(hook[0] == name for hook in self._hooks):
            return attribute

        def call(**kwargs: Any) -> Any:
            for hook in list(self._hooks):
                if hook[0] == name and hook[1](kwargs):
                    self._hooks.remove(hook)
                    hook[2]()
            return attribute(**kwargs)

        return call


class Lab:
    """The registry the `client` fixture talks to, reconfigurable, with its lifecycle jobs."""

    def __init__(self, registry: Registry, aws: AwsClients, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.aws, self.client, self._base, self._monkeypatch = aws, client, registry, monkeypatch
        self.clock = Clock()
        self.configure()

    def configure(self, policies: list[dict[str, Any]] | None = None, threads: bool = False, **scalars: Any) -> None:
        """A lifecycle configuration; with `threads`, clients that several threads may share."""
        lifecycle = Lifecycle(policies=parse_policies(json.dumps({"repositories": policies or []})), **scalars)
        settings = replace(self._base.settings, lifecycle=lifecycle)
        self.interjections = Interjecting(self.aws)
        clients = SerializedAws(self.interjections) if threads else self.interjections
        self.registry = Registry.build(settings, clients)
        self._monkeypatch.setattr("app.registry", self.registry)
        self.jobs = Housekeeping.build(settings, clients, self.clock)

    @property
    def table(self) -> str:
        return self.registry.settings.table

    @property
    def bucket(self) -> str:
        return self.registry.settings.bucket

    def collector(self, page_size: int = 500) -> Collector:
        jobs = self.jobs
        return Collector(jobs.store, jobs.manifests, jobs.blobs, jobs.settings.lifecycle, self.clock,
                         page_size=page_size)

    def collect(self) -> Run:
        return self.collector().run(never)

    def item(self, pk: str, sk: str) -> dict[str, Any] | None:
        found = self.aws.dynamodb.get_item(TableName=self.table, Key=to_item({"pk": pk, "sk": sk})).get("Item")
        return from_item(found) if found else None

    def blob_item(self, digest: str) -> dict[str, Any] | None:
        return self.item(f"blob#{digest}", "blob")

    def items(self) -> list[dict[str, Any]]:
        pages = self.aws.dynamodb.get_paginator("scan").paginate(TableName=self.table)
        return [from_item(i) for page in pages for i in page["Items"]]

    def blob_items(self) -> list[dict[str, Any]]:
        return [i for i in self.items() if i["pk"].startswith("blob#")]

    def assert_consistent(self) -> None:
        """What a registry must hold whatever raced: each tag names a stored manifest (the
        same digest), each manifest's blobs are stored and linked in its repository, and each
        blob's reference count is the number of manifests that reference it."""
        items = self.items()
        manifests = {(i["pk"], i["digest"]): manifest_record(i) for i in items if i["sk"].startswith("manifest#")}
        for tag in (i for i in items if i["sk"].startswith("tag#")):
            assert (tag["pk"], tag["digest"]) in manifests, f"{tag['pk']} {tag['sk']} names a deleted manifest"
        references: Counter[str] = Counter()
        for (pk, _), record in manifests.items():
            blobs = set(self.jobs.manifests.blobs_of(record))
            references.update(blobs)
            repo = pk.split("#", 1)[1]
            for digest in blobs:
                link, blob = self.registry.meta.get_link(repo, digest), self.registry.meta.get_blob(digest)
                assert link is not None and blob is not None and link.key == blob.key, (repo, digest)
        counted = {i["pk"].split("#", 1)[1]: i["refs"] for i in items if i["pk"].startswith("blob#")}
        assert {d: n for d, n in counted.items() if n} == dict(references)

    def objects(self) -> list[str]:
        return bucket_keys(self.aws, self.bucket)

    def backdate(self, pk: str, sk: str, hours: float, attribute: str = "created") -> None:
        """Make a stored timestamp older (the registry writes real time; tests cannot wait)."""
        self.aws.dynamodb.update_item(TableName=self.table, Key=to_item({"pk": pk, "sk": sk}),
                                      UpdateExpression="SET #a = #a - :age", ExpressionAttributeNames={"#a": attribute},
                                      ExpressionAttributeValues=to_item({":age": int(hours * HOUR)}))

    def backdate_tag(self, repo: str, tag: str, hours: float) -> None:
        self.backdate(f"repo#{repo}", tag_sk(tag), hours)

    def backdate_manifest(self, repo: str, digest: str, hours: float) -> None:
        self.backdate(f"repo#{repo}", f"manifest#{digest}", hours)

    def push_blob(self, repo: str, data: bytes) -> str:
        response = self.client.post(f"/v2/{repo}/blobs/uploads/?digest={digest_of(data)}", body=data)
        assert response.status == 201, response.body
        return digest_of(data)

    def push_image(self, repo: str, tag: str, layers: list[bytes], config: bytes = b"{}",
                   **extra: Any) -> tuple[str, bytes]:
        """Push config and layers (whole), then the manifest; returns its digest and body."""
        for blob in [config, *layers]:
            self.push_blob(repo, blob)
        body = manifest_body(digest_of(config), [(digest_of(layer), len(layer)) for layer in layers], **extra)
        response = self.put_manifest(repo, tag, body)
        assert response.status == 201, response.body
        return digest_of(body), body

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str = mt.OCI_MANIFEST) -> Any:
        return self.client.put(f"/v2/{repo}/manifests/{reference}", body=body, headers={"Content-Type": media_type})

    def pulls_exactly(self, repo: str, reference: str, body: bytes) -> None:
        """GET the manifest, then every blob it names from S3, each checked against its digest."""
        response = self.client.get(f"/v2/{repo}/manifests/{reference}")
        assert response.status == 200, response.body
        assert response.body == body and response.header("Docker-Content-Digest") == digest_of(body)
        doc = json.loads(body)
        for descriptor in [doc["config"], *doc["layers"]]:
            assert hashlib.sha256(fetch_blob(self.client, repo, descriptor["digest"])).hexdigest() == \
                descriptor["digest"].split(":")[1]


def error_code(response: Any) -> str:
    return str(response.json()["errors"][0]["code"])


def berth(lab: Lab, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`berth ARGS` on the lab's table and bucket: its exit status and what it printed."""
    from berth.cli import main

    status = main([*args, "--table", lab.table, "--bucket", lab.bucket, "--region", "us-east-1"])
    return status, capsys.readouterr().out
