"""GC and purge at any size: one purge and one collection over registries of 1,000, 10,000 and
(with `--big`) 100,000 manifests holding the same garbage, with the AWS calls and the time of
each. The calls should not grow with the registry, only with the garbage.

Each registry gets a table and bucket of its own on the bench's moto, seeded straight into
moto's backend (100,000 manifests through BatchWriteItem would take minutes): per manifest its
item, a tag, its own layer's blob record (counted, so not a candidate) and link; per hundred
manifests a repository, an upload in progress and a blob pushed but not yet referenced (both
in the sweep index, neither idle nor past the grace period). The garbage, the same at every
size: unreferenced blobs past the grace period, abandoned uploads with a piece each, pieces no
record names from two hours ago, multipart uploads no record names and manifest bodies left
unsettled by pushes that died.

Times are split as everywhere in the bench: "in AWS" is the time inside the calls, here moto's;
moto has no index and walks the whole table for every Query on one, which DynamoDB does not, so
that part grows with the registry here and would not deployed. "Own" is the rest.
"""

from __future__ import annotations

import datetime
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.awsbackend import REGION, Backend
from bench.awscalls import AwsCallCounter

SIZES = (1_000, 10_000)
BIG_SIZES = (100_000,)
PER_REPOSITORY = 100
GARBAGE_BLOBS = 100
ABANDONED_UPLOADS = 20
ORPHANED_PIECES = 10
ORPHANED_MULTIPART = 5  # S3 multipart uploads no record names (a CreateMultipartUpload answer lost)
UNSETTLED_BODIES = 5  # manifest bodies in S3 a push wrote and then died
SCAN_PAGE = 500  # items per Scan page in the design this replaces (a full scan per purge and per collection)


@dataclass
class JobFigures:
    calls: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    aws_seconds: float = 0.0
    removed: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"calls": sum(self.calls.values()), "calls_by_api": dict(sorted(self.calls.items())),
                "seconds": round(self.seconds, 3), "aws_seconds": round(self.aws_seconds, 3), "removed": self.removed}


@dataclass
class SizeFigures:
    manifests: int
    items: int  # in the table
    purge: JobFigures
    collection: JobFigures

    @property
    def scan_calls(self) -> int:
        """Scan pages one pass over the table took before the sweep index, per job."""
        return -(-self.items // SCAN_PAGE)

    def as_json(self) -> dict[str, Any]:
        return {"manifests": self.manifests, "table_items": self.items, "purge": self.purge.as_json(),
                "collection": self.collection.as_json(), "full_scan_calls_per_job_before": self.scan_calls}


def _item(values: dict[str, Any]) -> dict[str, Any]:
    from chalicelib.storage.table import to_item

    return to_item(values)


class Seeder:
    """Writes records into moto's table directly, as the registry's own writes would leave them."""

    def __init__(self, backend: Backend, table: str) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        self._table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].get_table(table)
        self.items = 0

    def put(self, values: dict[str, Any]) -> None:
        self._table.put_item(_item(values))
        self.items += 1


def seed(backend: Backend, table: str, bucket: str, manifests: int, now: int, old: int) -> int:
    """The registry and its garbage; returns the number of items in the table."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    from chalicelib.storage.bodies import unsettled_body
    from chalicelib.storage.keys import CATALOG, blob_pk, link_sk, manifest_sk, repo_pk, sweep_shard, tag_sk
    from chalicelib.uploads.state import UploadState, piece_hour

    seeder, s3, moto_s3 = Seeder(backend, table), backend.client("s3"), s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    config = "sha256:" + "c" * 64
    seeder.put({"pk": blob_pk(config), "sk": "blob", "key": "blobs/config", "size": 2, "created": old, "touched": old,
                "refs": manifests, "repos": {"seed"}})
    for number in range(manifests):
        repo, digest, layer = f"seed/r{number // PER_REPOSITORY}", f"sha256:{number:064x}", f"sha256:{number:063x}f"
        if number % PER_REPOSITORY == 0:
            seeder.put({"pk": CATALOG, "sk": repo_pk(repo)})
            upload = UploadState.new(repo, None)  # in progress: in the index, not idle
            seeder.put({"pk": f"upload#{upload.uuid}", "sk": "upload", "repo": repo, "offset": 0, "created": now,
                        "touched": now, "sweep": sweep_shard("upload", upload.uuid), "parts": [], "pieces": []})
            fresh = f"sha256:{number:062x}ee"  # pushed, not yet referenced: in the index, within the grace period
            seeder.put({"pk": blob_pk(fresh), "sk": "blob", "key": f"blobs/{fresh}", "size": 1, "created": now,
                        "touched": now, "refs": 0, "repos": {repo}, "sweep": sweep_shard("blob", fresh)})
        body = json.dumps({"schemaVersion": 2, "config": {"digest": config, "size": 2},
                           "layers": [{"digest": layer, "size": 1}]}).encode()
        manifest = {"digest": digest, "media_type": "application/vnd.oci.image.manifest.v1+json",
                    "size": len(body), "body": body, "created": old, "version": f"{number:016x}"}
        seeder.put({"pk": repo_pk(repo), "sk": manifest_sk(digest), **manifest})
        seeder.put({"pk": repo_pk(repo), "sk": tag_sk(f"v{number}"), **manifest})
        seeder.put({"pk": blob_pk(layer), "sk": "blob", "key": f"blobs/{layer}", "size": 1, "created": old,
                    "touched": old, "refs": 1, "repos": {repo}})
        seeder.put({"pk": repo_pk(repo), "sk": link_sk(layer), "key": f"blobs/{layer}", "size": 1, "created": old})
    # The garbage, the same at every size.
    for number in range(GARBAGE_BLOBS):
        digest = f"sha256:{number:062x}dd"
        key = f"blobs/garbage-{number}"
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        seeder.put({"pk": blob_pk(digest), "sk": "blob", "key": key, "size": 1, "created": old, "touched": old,
                    "refs": 0, "repos": {"seed/r0"}, "sweep": sweep_shard("blob", digest)})
        seeder.put({"pk": repo_pk("seed/r0"), "sk": link_sk(digest), "key": key, "size": 1, "created": old})
    hour = piece_hour(now - 3 * 3600)
    for number in range(ABANDONED_UPLOADS):
        upload = UploadState.new("seed/r0", None)
        piece = f"blobs/pieces/{hour}/{upload.uuid}.0.{number:012x}"
        s3.put_object(Bucket=bucket, Key=piece, Body=b"y")
        seeder.put({"pk": f"upload#{upload.uuid}", "sk": "upload", "repo": "seed/r0", "offset": 1, "created": old,
                    "touched": old, "sweep": sweep_shard("upload", upload.uuid), "parts": [],
                    "pieces": [{"key": piece, "size": 1}]})
    for number in range(ORPHANED_PIECES):
        s3.put_object(Bucket=bucket, Key=f"blobs/pieces/{hour}/{UploadState.new('x', None).uuid}.4.{number:012x}",
                      Body=b"z")
    for _ in range(ORPHANED_MULTIPART):
        key = f"blobs/{UploadState.new('x', None).uuid}"
        started = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        s3.upload_part(Bucket=bucket, Key=key, UploadId=started, PartNumber=1, Body=b"w")
        orphan: Any = moto_s3.get_bucket(bucket).multiparts[started]
        orphan.initiated -= datetime.timedelta(hours=3)  # started long ago (motoguard dates moto's uploads)
    for number in range(UNSETTLED_BODIES):
        digest = f"sha256:{number:062x}bb"
        key = f"manifests/sha256/{digest[7:]}.{number:012x}"
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
        seeder.put({**unsettled_body((repo_pk("seed/r0"), manifest_sk(digest)), key), "touched": old})
    # The purge last swept the hour before: it lists the orphans' hour and the next.
    seeder.put({"pk": "lifecycle", "sk": "purge", "pieces_swept": piece_hour(now - 4 * 3600)})
    return seeder.items


def measure_size(backend: Backend, manifests: int, progress: Callable[[str], None]) -> SizeFigures:
    from berth.local.provision import provision
    from chalicelib.lifecycle.jobs import Housekeeping, never
    from chalicelib.lifecycle.policy import Lifecycle
    from chalicelib.settings import Settings
    from chalicelib.storage.clients import AwsClients

    name = f"bench-gc-{manifests}"
    provision(backend.client("s3"), backend.client("dynamodb"), name, name)
    now = int(time.time())
    progress(f"seeding {manifests:,} manifests")
    items = seed(backend, name, name, manifests, now, now - 30 * 86_400)
    settings = Settings(bucket=name, table=name, region=REGION, presign_seconds=300, lifecycle=Lifecycle())
    clients = AwsClients(REGION)
    counter = AwsCallCounter()
    counter.attach(clients.s3)
    counter.attach(clients.dynamodb)
    jobs = Housekeeping.build(settings, clients)
    figures = []
    for job in ("purge", "collection"):
        progress(f"{job} of {manifests:,} manifests")
        calls, aws = counter.calls(), counter.seconds()
        started = time.perf_counter()
        if job == "purge":
            report = jobs.purge()
            removed = report.uploads + report.pieces + report.multipart + report.bodies
        else:
            removed = jobs.collector().run(never).blobs
        figures.append(JobFigures(counter.calls() - calls, time.perf_counter() - started, counter.seconds() - aws,
                                  removed))
    backend.client("dynamodb").delete_table(TableName=name)  # moto keeps it in memory otherwise
    return SizeFigures(manifests, items, figures[0], figures[1])


def run(backend: Backend, big: bool, progress: Callable[[str], None]) -> list[SizeFigures]:
    return [measure_size(backend, size, progress) for size in SIZES + (BIG_SIZES if big else ())]


def lines(sizes: list[SizeFigures]) -> list[str]:
    from bench.report import by_api, table

    rows = []
    for size in sizes:
        row = [f"{size.manifests:,}", f"{size.items:,}"]
        for job in (size.purge, size.collection):
            row += [str(sum(job.calls.values())), str(job.removed), f"{job.seconds:.2f}",
                    f"{job.seconds - job.aws_seconds:.2f}"]
        rows.append(row + [f"{size.scan_calls:,}"])
    header = ["manifests", "table items", "purge calls", "removed", "s", "own s", "collection calls", "removed",
              "s", "own s", "a full scan, per job, before"]
    result = table(header, rows)
    for size in sizes:
        result.append(f"  {size.manifests:,}: purge {by_api(size.purge.calls)}; "
                      f"collection {by_api(size.collection.calls)}")
    result.append(f"  garbage at every size: {GARBAGE_BLOBS} unreferenced blobs past the grace period, "
                  f"{ABANDONED_UPLOADS} abandoned uploads with a piece each, {ORPHANED_PIECES} orphaned pieces, "
                  f"{ORPHANED_MULTIPART} orphaned multipart uploads, {UNSETTLED_BODIES} orphaned manifest bodies; "
                  "\"s\" includes moto's Query on the index, which walks the whole table (DynamoDB's does not)")
    return result
