"""The IAM policies `make deploy` writes are enough, and no more than needed.

Enough: every AWS call (and every presigned URL, which S3 checks against the signer's role)
each function makes while running through what it does deployed, on moto, is allowed by that
function's own policy (berth.deploy.policies), evaluated with IAM's wildcard matching. moto
checks no permissions, so this is where a missing grant would show before AWS.

No more: every action a policy grants is used by its function here, except the few AWS needs
for its own reasons (listed in the policies' docstring), and no S3 or DynamoDB action is
granted on `*`.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import copy
import fnmatch
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import requests

from berth.deploy.policies import policies
from berth.deploy.storage import Storage
from berth.local.provision import provision_verify_queue
from berth.local.verifier import deliver
from chalicelib.api import authorizer
from chalicelib.auth.gateway import Unauthorized
from chalicelib.auth.permissions import normalise_actions
from chalicelib.auth.secrets import hash_password
from chalicelib.lifecycle.jobs import Housekeeping, never
from chalicelib.lifecycle.policy import HOUR, Lifecycle, parse_policies
from chalicelib.manifests import mediatypes as mt
from chalicelib.registry import Registry
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.heartbeats import Heartbeats
from chalicelib.storage.keys import tag_sk
from chalicelib.storage.table import to_item
from chalicelib.uploads.parts import MIN_PART
from tests.api.ui_support import Visitor
from tests.conftest import ApiClient
from tests.deploy.conftest import Packaged
from tests.helpers import MiB, digest_of, load_app, manifest_body

ACCOUNT, REGION = "123456789012", "us-east-1"  # moto's
PASSWORD = "correct horse battery staple"
# Granted for AWS's sake, not for a call the code makes (berth/deploy/policies.py says why).
FOR_AWS = {"s3:ListBucket", "sqs:GetQueueAttributes", "logs:CreateLogStream", "logs:PutLogEvents"}
FUNCTION: contextvars.ContextVar[str] = contextvars.ContextVar("function", default="api_handler")
AUTHORIZE = authorizer.policy  # the authorizer's work, before Stage stands it in a Lambda of its own


@contextlib.contextmanager
def running(function: str) -> Iterator[None]:
    token = FUNCTION.set(function)
    try:
        yield
    finally:
        FUNCTION.reset(token)


def needs(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """The IAM actions and resources one call (or presigned URL) needs."""
    if service == "s3":
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        if operation == "ListObjectsV2":
            return [("s3:ListBucket", bucket)]
        if operation == "ListMultipartUploads":
            return [("s3:ListBucketMultipartUploads", bucket)]
        if operation == "DeleteObjects":
            return [("s3:DeleteObject", f"{bucket}/{o['Key']}") for o in params["Delete"]["Objects"]]
        if operation == "UploadPartCopy":
            source = params["CopySource"]
            return [("s3:PutObject", f"{bucket}/{params['Key']}"),
                    ("s3:GetObject", f"arn:aws:s3:::{source['Bucket']}/{source['Key']}")]
        action = {"HeadObject": "GetObject", "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject",
                  "CompleteMultipartUpload": "PutObject", "ListParts": "ListMultipartUploadParts"}.get(operation,
                                                                                                     operation)
        return [(f"s3:{action}", f"{bucket}/{params['Key']}")]
    if service == "dynamodb":
        def table(name: str) -> str:
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"

        if operation == "TransactWriteItems":
            kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem"}
            return [(f"dynamodb:{kinds[kind]}", table(body["TableName"]))
                    for item in params["TransactItems"] for kind, body in item.items()]
        if operation == "BatchGetItem":
            return [("dynamodb:BatchGetItem", table(name)) for name in params["RequestItems"]]
        index = f"/index/{params['IndexName']}" if "IndexName" in params else ""
        return [(f"dynamodb:{operation}", table(params["TableName"]) + index)]
    if service == "secretsmanager":
        return [(f"secretsmanager:{operation}", params["SecretId"])]
    if service == "sqs":
        name = params["QueueUrl"].rsplit("/", 1)[1]
        return [(f"sqs:{operation}", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")]
    if service == "events":
        return [(f"events:{operation}", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{e['EventBusName']}")
                for e in params["Entries"]]
    raise AssertionError(f"no IAM mapping for {service}.{operation}: add one")


def allowed(document: dict[str, Any], action: str, resource: str) -> bool:
    for statement in document["Statement"]:
        actions, resources = statement["Action"], statement["Resource"]
        if statement["Effect"] == "Allow" and \
                any(fnmatch.fnmatch(action.lower(), a.lower()) for a in actions) and \
                any(fnmatch.fnmatchcase(resource, r) for r in resources):
            return True
    return False


class Recorder:
    """Every call the registry's clients make, by the function running it."""

    def __init__(self, aws: AwsClients) -> None:
        self._clients = [aws.s3, aws.dynamodb, aws.secretsmanager, aws.sqs, aws.events]
        self.calls: dict[str, list[tuple[str, str]]] = {}

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.signing_name  # the IAM prefix, for these services
        self.calls.setdefault(FUNCTION.get(), []).extend(needs(service, model.name, copy.deepcopy(params)))

    def __enter__(self) -> Recorder:
        for client in self._clients:
            # Also raised when a URL is presigned, which is a call S3 authorises later.
            client.meta.events.register("before-parameter-build.*.*", self._record)
        return self

    def __exit__(self, *_: Any) -> None:
        for client in self._clients:
            client.meta.events.unregister("before-parameter-build.*.*", self._record)


class Stage:
    """A registry wired as deployed: token auth with the key in Secrets Manager, the verify
    queue fed by the bucket, events on; with the policies its deployment would get."""

    def __init__(self, registry: Registry, aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> None:
        self.aws = aws
        bucket, table = registry.settings.bucket, registry.settings.table
        queue = f"verify-{uuid.uuid4().hex[:12]}"
        queue_url = provision_verify_queue(aws.s3, aws.sqs, bucket, queue)
        queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]
        secret = aws.secretsmanager.create_secret(Name=f"signing-{queue}", SecretString=uuid.uuid4().hex)["ARN"]
        bus = f"events-{queue}"
        aws.events.create_event_bus(Name=bus)
        lifecycle = Lifecycle(policies=parse_policies(json.dumps({"repositories": [
            {"match": "*", "keep_newest_tags": 1, "expire_untagged_after_days": 1}]})))
        monkeypatch.setenv("BERTH_AUTH", "token")
        self.settings = replace(registry.settings, auth_mode="token", signing_secret_id=secret, verify_queue=queue,
                                verify_queue_url=queue_url, event_bus=bus, lifecycle=lifecycle)
        storage = Storage(bucket, f"arn:aws:s3:::{bucket}", table, f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}",
                          secret, queue, queue_url, queue_arn, "")
        self.policies = policies(storage.grants("prod", bus))

        self.handler = Registry.build(self.settings, aws)
        self.handler.accounts.add_user("admin", hash_password(PASSWORD, rounds=4))
        self.handler.accounts.grant("admin", "*", normalise_actions(["*"]))
        self.app = load_app(self.handler)
        self.api = ApiClient(self.app)
        # The authorizer is a Lambda of its own: its own container, its own cached key.
        in_authorizer = Registry.build(self.settings, aws)

        def as_authorizer(_: Any, token: str, method_arn: str, source: str = "") -> dict[str, Any]:
            with running("credentials"):
                return AUTHORIZE(in_authorizer.auth, token, method_arn, source)

        monkeypatch.setattr(authorizer, "policy", as_authorizer)

    def login(self) -> dict[str, str]:
        basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        scopes = "&".join(f"scope=repository:{r}:pull,push,delete" for r in ("team/app", "team/copy"))
        response = self.api.get(f"/token?service=berth&{scopes}&scope=registry:catalog:*",
                                headers={"Authorization": f"Basic {basic}"})
        assert response.status == 200, response.body
        return {"Authorization": f"Bearer {response.json()['token']}"}

    def verify(self) -> int:
        with running("verify_blob"):
            return deliver(lambda: contextlib.nullcontext(self.app), self.aws.sqs, self.settings.verify_queue_url or "")

    def housekeeping(self, hours_later: float) -> Housekeeping:
        return Housekeeping.build(self.settings, self.aws, lambda: time.time() + hours_later * HOUR)


@pytest.fixture
def stage(registry: Registry, aws: AwsClients, monkeypatch: pytest.MonkeyPatch) -> Stage:
    return Stage(registry, aws, monkeypatch)


def push(api: ApiClient, auth: dict[str, str], repo: str, blob: bytes) -> str:
    response = api.post(f"/v2/{repo}/blobs/uploads/?digest={digest_of(blob)}", body=blob, headers=auth)
    assert response.status == 201, response.body
    return digest_of(blob)


def push_chunked(api: ApiClient, auth: dict[str, str], repo: str, data: bytes, finish: bool = True) -> str:
    """4 MiB chunks: pieces, then a multipart upload once they make a part."""
    location = api.post(f"/v2/{repo}/blobs/uploads/", headers=auth).header("Location")
    for start in range(0, len(data), 4 * MiB):
        chunk = data[start:start + 4 * MiB]
        ranged = {**auth, "Content-Range": f"{start}-{start + len(chunk) - 1}"}
        response = api.patch(location, body=chunk, headers=ranged)
        assert response.status == 202, response.body
        location = response.header("Location")
    if finish:
        assert api.put(f"{location}?digest={digest_of(data)}", headers=auth).status == 201
    return str(location)


def push_direct(stage: Stage, auth: dict[str, str], repo: str, data: bytes, claimed: str) -> str:
    """Parts straight to S3, then the finish; returns the upload's id."""
    location = stage.api.post(f"/v2/{repo}/blobs/uploads/?berth-direct={len(data)}", headers=auth).header("Location")
    listing = stage.api.get(f"{location}/parts", headers=auth).json()
    for entry in listing["urls"]:
        part = data[(entry["number"] - 1) * listing["partSize"]: entry["number"] * listing["partSize"]]
        assert requests.put(entry["url"], data=part, timeout=60).status_code == 200
    assert stage.api.put(f"{location}?digest={claimed}", headers=auth).status == 202
    return str(location).rsplit("/", 1)[1]


def put_manifest(api: ApiClient, auth: dict[str, str], repo: str, reference: str, body: bytes,
                 media_type: str = mt.OCI_MANIFEST) -> str:
    response = api.put(f"/v2/{repo}/manifests/{reference}", body=body, headers={**auth, "Content-Type": media_type})
    assert response.status == 201, response.body
    return digest_of(body)


def run_the_api(stage: Stage) -> None:
    """What clients do: log in, push every way (whole, chunked, mounted, direct), manifests
    small, large (body in S3) and an index, pull, list, cancel, delete."""
    api, auth = stage.api, stage.login()
    config, layer = push(api, auth, "team/app", b"{}"), push(api, auth, "team/app", b"layer")
    big = os.urandom(16 * MiB)  # ends with a lone piece, which the finish copies in S3
    push_chunked(api, auth, "team/app", big)
    abandoned = push_chunked(api, auth, "team/app", os.urandom(9 * MiB), finish=False)
    assert api.get(abandoned, headers=auth).status == 204
    assert api.delete(abandoned, headers=auth).status == 204
    direct = os.urandom(MIN_PART + 10)
    upload = push_direct(stage, auth, "team/app", direct, digest_of(direct))
    push_direct(stage, auth, "team/app", os.urandom(MIN_PART + 10), digest_of(b"other bytes"))
    with running("verify_blob"):  # out of time at once: it checkpoints and queues its continuation
        assert stage.handler.verifier.run(upload, should_stop=lambda: True).startswith("continued")
    assert stage.verify() >= 3
    mounted = api.post(f"/v2/team/copy/blobs/uploads/?mount={layer}&from=team/app", headers=auth)
    assert mounted.status == 201, mounted.body
    layers = [(layer, 5), (digest_of(big), len(big)), (digest_of(direct), len(direct))]
    small = put_manifest(api, auth, "team/app", "1", manifest_body(config, layers))
    large = put_manifest(api, auth, "team/app", "2", manifest_body(config, layers, annotations={"pad": "x" * 300_000}))
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": d, "size": 1} for d in (small, large)]}).encode()
    put_manifest(api, auth, "team/app", "multi", index, mt.OCI_INDEX)
    accept = {**auth, "Accept": f"{mt.OCI_MANIFEST}, {mt.OCI_INDEX}"}
    for reference in ("1", "2", "multi"):
        assert api.get(f"/v2/team/app/manifests/{reference}", headers=accept).status == 200
    assert api.head(f"/v2/team/app/blobs/{layer}", headers=auth).status == 200
    assert api.get(f"/v2/team/app/blobs/{layer}", headers=auth).status == 307
    for listing in ("/v2/team/app/tags/list", "/v2/_catalog", f"/v2/team/app/referrers/{small}"):
        assert api.get(listing, headers=auth).status == 200, listing
    assert api.post("/v2/_berth/doctor", headers=auth).json()["events"]["accepted"] is True
    # The web pages, as the admin sees them: every page, the storage totals and a dry run (a Scan).
    pages = Visitor(api)
    assert pages.log_in("admin", PASSWORD).status == 303
    for page in ("/ui/", "/ui/r/team/app?untagged=1", "/ui/r/team/app:1", "/ui/r/team/app:2", "/ui/r/team/app:multi",
                 "/ui/storage?collect=1"):
        assert pages.get(page).status == 200, page
    assert api.delete("/v2/team/app/manifests/multi", headers=auth).status == 202
    assert api.delete(f"/v2/team/app/manifests/{large}", headers=auth).status == 202
    for number in range(100):  # more tags than a transaction holds: they go in batches, each checking the manifest
        put_manifest(api, auth, "team/app", f"many-{number}", manifest_body(config, layers))
    assert api.delete(f"/v2/team/app/manifests/{small}", headers=auth).status == 202
    assert api.delete(f"/v2/team/copy/blobs/{layer}", headers=auth).status == 202
    # The authorizer in Basic mode, where it looks the user up itself.
    basic = Registry.build(replace(stage.settings, auth_mode="basic"), stage.aws)
    with running("credentials"):
        arn = "arn:aws:execute-api:us-east-1:1:api/api/GET/v2"
        credentials = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        assert AUTHORIZE(basic.auth, credentials, arn)["policyDocument"]
        wrong = "Basic " + base64.b64encode(b"admin:not-the-password").decode()
        with pytest.raises(Unauthorized):  # and the failure is counted, for the throttle
            AUTHORIZE(basic.auth, wrong, arn)


def run_the_jobs(stage: Stage) -> None:
    """An upload abandoned for two days, then a collection: retention expires a tag and the
    manifests left untagged, the sweep frees their blobs."""
    api, auth = stage.api, stage.login()
    config = push(api, auth, "team/app", b"{}")
    push_chunked(api, auth, "team/app", os.urandom(9 * MiB), finish=False)
    stage.api.post(f"/v2/team/app/blobs/uploads/?berth-direct={MIN_PART + 1}", headers=auth)
    for tag, pad in (("old", 300_000), ("new", 0)):
        layer = push(api, auth, "team/app", tag.encode())
        put_manifest(api, auth, "team/app", tag, manifest_body(config, [(layer, 3)], annotations={"pad": "x" * pad}))
    # An hour older, so "keep the newest tag" has one to keep.
    key = to_item({"pk": "repo#team/app", "sk": tag_sk("old")})
    stage.aws.dynamodb.update_item(TableName=stage.settings.table, Key=key,
                                   UpdateExpression="SET created = created - :h",
                                   ExpressionAttributeValues=to_item({":h": int(HOUR)}))
    heartbeats = Heartbeats(stage.aws, stage.settings.table)  # as app.py records each scheduled run
    with running("purge_uploads"), heartbeats.run("purge_uploads"):
        assert stage.housekeeping(48).purge().uploads == 2
    with running("collect_garbage"), heartbeats.run("collect_garbage"):
        report = stage.housekeeping(24 * 30).scheduled_collection(never)
    assert report["manifests"] >= 1 and report["blobs"] >= 1, report


def check(stage: Stage, recorded: dict[str, list[tuple[str, str]]], functions: tuple[str, ...]) -> None:
    for function in functions:
        document, calls = stage.policies[function], recorded.get(function, [])
        assert calls, f"{function} made no calls: the scenario does not reach it"
        denied = sorted({(a, r) for a, r in calls if not allowed(document, a, r)})
        assert not denied, f"{function} would be denied: {denied}"
        granted = {a for s in document["Statement"] for a in s["Action"]}
        assert granted - {a for a, _ in calls} - FOR_AWS == set(), f"{function} is granted more than it uses"


def test_the_api_the_authorizer_and_the_verifier_have_what_they_use(stage: Stage, aws: AwsClients) -> None:
    with Recorder(aws) as recorder:
        run_the_api(stage)
    check(stage, recorder.calls, ("api_handler", "credentials", "verify_blob"))


def test_the_lifecycle_jobs_have_what_they_use(stage: Stage, aws: AwsClients) -> None:
    with Recorder(aws) as recorder:
        run_the_jobs(stage)
    check(stage, recorder.calls, ("purge_uploads", "collect_garbage"))


def test_no_s3_or_dynamodb_action_on_everything(packaged: Packaged) -> None:
    """In the packaged template itself: every role, every statement."""
    roles = packaged.of_type("AWS::IAM::Role")
    assert len(roles) == 7
    for name, role in roles.items():
        for policy in role["Properties"]["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                actions, resources = statement["Action"], statement["Resource"]
                actions, resources = [actions] if isinstance(actions, str) else actions, \
                    [resources] if isinstance(resources, str) else resources
                assert "*" not in actions and not any(a.endswith(":*") for a in actions), (name, statement)
                if any(a.startswith(("s3:", "dynamodb:")) for a in actions):
                    for resource in resources:
                        assert resource != "*" and ":::*" not in resource and ":*:" not in resource, (name, resource)
                        assert "table/*" not in resource and "*" not in resource.split(":::")[-1].split("/")[0], \
                            (name, resource)


@dataclass
class CacheStage:
    """The stage with a pull-through rule to an upstream whose credentials are in Secrets
    Manager, and the policies such a stage gets."""

    api: ApiClient
    auth: dict[str, str]
    copier_app: Any  # a Lambda of its own: its own container, its own read of the secret
    copier: Any
    eviction: Any
    clock: Any
    upstream: Any
    queue_url: str
    policies: dict[str, dict[str, Any]]


@pytest.fixture
def cache_stage(stage: Stage, aws: AwsClients) -> Iterator[CacheStage]:
    from chalicelib.cache.rules import CacheConfig
    from chalicelib.cache.wiring import build_cache
    from tests.api.cache_support import Clock
    from tests.api.upstream_registry import UpstreamRegistry

    with UpstreamRegistry(auth="basic").running() as upstream:
        secret = aws.secretsmanager.create_secret(Name=f"upstream-{uuid.uuid4().hex[:8]}", SecretString=json.dumps(
            {"username": upstream.user, "password": upstream.password}))["ARN"]
        queue = f"cache-{uuid.uuid4().hex[:12]}"
        queue_url = aws.sqs.create_queue(QueueName=queue)["QueueUrl"]
        queue_arn = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]
        rules = json.dumps({"up/": {"url": upstream.url, "credentials": {"secret": secret}, "expire_after_days": 1}})
        config = CacheConfig.from_env({"BERTH_UPSTREAMS": rules, "BERTH_CACHE_QUEUE": queue,
                                       "BERTH_CACHE_QUEUE_URL": queue_url, "BERTH_CACHE_STATS_SECONDS": "0"})
        bucket, table = stage.settings.bucket, stage.settings.table
        storage = Storage(bucket, f"arn:aws:s3:::{bucket}", table, f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}",
                          stage.settings.signing_secret_id or "", "", "", "", "", cache_queue_name=queue,
                          cache_queue_url=queue_url, cache_queue_arn=queue_arn)
        clock = Clock()
        settings = replace(stage.settings, cache=config)
        caches = [build_cache(config, aws, stage.handler.blobs, table, clock) for _ in ("api", "copier")]
        caches[1].copier.part_size = MIN_PART
        api_app, copier_app = (load_app(replace(stage.handler, settings=settings, cache=c)) for c in caches)
        api = ApiClient(api_app)
        basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
        token = api.get("/token?service=berth&scope=repository:up/team/app:pull",
                        headers={"Authorization": f"Basic {basic}"}).json()["token"]
        yield CacheStage(api, {"Authorization": f"Bearer {token}"}, copier_app, caches[1].copier,
                         caches[1].eviction, clock, upstream, queue_url, policies(storage.grants("prod", None, rules)))


def run_the_cache(cached: CacheStage, aws: AwsClients) -> None:
    """Pulls of manifests (one large, moved upstream) and blobs, copies (multipart, and one the
    digest refuses), a copy left half-done, and an eviction that removes it."""
    api, auth, upstream, clock = cached.api, cached.auth, cached.upstream, cached.clock
    big, small, lie = os.urandom(MIN_PART + 100), b"small layer", os.urandom(MIN_PART + 100)
    upstream.add_image("team/app", "1", [big, small, lie])
    upstream.lies[digest_of(lie)] = os.urandom(len(lie))
    for version in ("a", "b"):
        upstream.add_image("team/app", "large", [small], annotations={"pad": version * 300_000})
        clock.advance(3600)  # past the TTL: revalidated, moved, stored anew
        assert api.get("/v2/up/team/app/manifests/large", headers=auth).status == 200
    assert api.get("/v2/up/team/app/manifests/large", headers=auth).status == 200  # its body from S3
    assert api.get("/v2/up/team/app/manifests/1", headers=auth).status == 200
    for layer in (big, small, lie):
        assert api.get(f"/v2/up/team/app/blobs/{digest_of(layer)}", headers=auth).status == 307

    with running("copy_blob"):
        assert deliver(lambda: contextlib.nullcontext(cached.copier_app), aws.sqs, cached.queue_url,
                       handler="copy_blob") == 3
    assert api.get(f"/v2/up/team/app/blobs/{digest_of(big)}", headers=auth).status == 307  # from S3
    half = os.urandom(3 * MIN_PART)
    upstream.add_image("team/app", "2", [half])
    api.get(f"/v2/up/team/app/blobs/{digest_of(half)}", headers=auth)
    with running("copy_blob"):
        assert cached.copier.run(digest_of(half), should_stop=lambda: True).startswith("continued")
    clock.advance(3 * 86_400)
    with running("collect_cache"):
        assert cached.eviction.due()
        report = cached.eviction.run(never)
    assert report.blobs >= 2 and report.items > 0


CACHE_STATEMENTS = ("CacheObjects", "CacheQueue", "UpstreamCredentials")


def test_the_cache_functions_have_what_they_use(stage: Stage, cache_stage: CacheStage, aws: AwsClients) -> None:
    with Recorder(aws) as recorder:
        run_the_cache(cache_stage, aws)
        # A fetch that died between writing a large body and recording it: the purge deletes it.
        key = "cache/manifests/sha256/" + "e" * 64 + ".0123456789ab"
        cache_stage.eviction._store.note_body(("cache#up/team/app", "manifest#sha256:" + "e" * 64), key)
        aws.s3.put_object(Bucket=stage.settings.bucket, Key=key, Body=b"{}")
        with running("purge_uploads"):
            assert stage.housekeeping(3).purge().bodies == 1
    purge = cache_stage.policies["purge_uploads"]
    assert not [(a, r) for a, r in recorder.calls["purge_uploads"] if not allowed(purge, a, r)]
    stage.policies = cache_stage.policies
    check(stage, recorder.calls, ("copy_blob", "collect_cache"))
    # The API's other statements are the registry's, used by the scenarios above; those the
    # cache adds must each be used, and nothing the cache does denied.
    api, calls = cache_stage.policies["api_handler"], recorder.calls["api_handler"]
    assert not [(a, r) for a, r in calls if not allowed(api, a, r)]
    added = [s for s in api["Statement"] if s["Sid"] in CACHE_STATEMENTS]
    assert {s["Sid"] for s in added} == set(CACHE_STATEMENTS)
    for statement in added:
        used = {a for a, r in calls if allowed({"Statement": [statement]}, a, r)}
        assert used == set(statement["Action"]), (statement["Sid"], used)
