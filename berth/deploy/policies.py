"""What each Lambda function may do, and nothing more: one IAM policy per function, naming the
stage's own bucket prefixes, table, secret and queue. Chalice gives every function with
`autogen_policy: false` a role of its own (`<function>_role`) and reads its policy from the
file `iam_policy_file` names; `berth.deploy.config` writes these documents there.

Why some grants that the code never names:
- `s3:ListBucket` on the bucket: without it S3 answers 403 instead of 404 for a missing key,
  and the registry tells "gone" (a concurrent request finished first) from "denied" by 404.
- Nothing for `TransactWriteItems` itself: IAM authorises a transaction by the actions of the
  items in it (PutItem, UpdateItem, DeleteItem; "Using IAM with DynamoDB transactions").
- SQS receive/delete/attributes for `verify_blob` (and `copy_blob`): Lambda's event source
  mapping polls the queue with the function's role (SAM adds nothing when Chalice names the role).
- Logs: the groups exist (`log_retention_in_days` makes CloudFormation create them); the
  functions only write streams into their stack's groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FUNCTIONS = ("api_handler", "credentials", "verify_blob", "purge_uploads", "collect_garbage", "copy_blob",
             "collect_cache")
# The S3 prefixes the registry writes (docs/architecture.md, docs/direct-upload.md, docs/cache.md).
# The deployment artifacts under deploy/ share the bucket but no function can touch them.
BLOBS, MANIFESTS, DIRECT, CACHE = "blobs/", "manifests/", "direct/", "cache/"
PIECES = "blobs/pieces/"  # filed by hour; the purge lists them (chalicelib/uploads/state.py)

ITEM_READS = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
ITEM_WRITES = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]


@dataclass(frozen=True)
class Grants:
    """The ARNs a stage's functions work on."""

    bucket_arn: str
    table_arn: str
    secret_arn: str
    queue_arn: str
    log_groups_arn: str  # the stack's Lambda log groups, e.g. arn:aws:logs:r:a:log-group:/aws/lambda/berth-prod-*
    event_bus_arn: str | None = None  # BERTH_EVENT_BUS, when events are on
    cache_queue_arn: str | None = None  # the pull-through cache's copy queue
    cache: bool = False  # BERTH_UPSTREAMS has rules: the functions use the cache's objects and records
    upstream_secrets: tuple[str, ...] = ()  # the Secrets Manager secrets those rules name

    def objects(self, *prefixes: str) -> list[str]:
        return [f"{self.bucket_arn}/{prefix}*" for prefix in prefixes]

    @property
    def sweep_index_arn(self) -> str:
        """The table's sparse index the lifecycle jobs query (chalicelib/storage/keys.py)."""
        return f"{self.table_arn}/index/sweep"


def _allow(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


def _document(grants: Grants, *statements: dict[str, Any]) -> dict[str, Any]:
    logs = _allow("Logs", ["logs:CreateLogStream", "logs:PutLogEvents"], [f"{grants.log_groups_arn}:*"])
    return {"Version": "2012-10-17", "Statement": [*statements, logs]}


def policies(grants: Grants) -> dict[str, dict[str, Any]]:
    every_prefix = grants.objects(BLOBS, MANIFESTS, DIRECT)
    read_secret = _allow("SigningKey", ["secretsmanager:GetSecretValue"], [grants.secret_arn])
    missing_is_404 = _allow("MissingKeysAre404", ["s3:ListBucket"], [grants.bucket_arn])
    api = [
        # Scan: the web pages' storage totals (docs/ui.md), for those who may pull everything.
        # ConditionCheckItem: a manifest delete with more tags than one transaction holds deletes
        # them in batches, each checking the manifest is unchanged.
        _allow("Table", ITEM_READS + ITEM_WRITES + ["dynamodb:Scan", "dynamodb:ConditionCheckItem"],
               [grants.table_arn]),
        # The same pages' "what a collection would free": the collector's candidates.
        _allow("SweepIndex", ["dynamodb:Query"], [grants.sweep_index_arn]),
        _allow("Objects", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                           "s3:ListMultipartUploadParts"], every_prefix),
        missing_is_404,
        read_secret,
    ]
    if grants.event_bus_arn:
        api.append(_allow("Events", ["events:PutEvents"], [grants.event_bus_arn]))
    copier, evictor = [], []
    if grants.cache_queue_arn:
        # The copier's trigger polls its queue with its role, whether or not the cache is used.
        copier.append(_allow("CacheQueue", ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
                             + (["sqs:SendMessage"] if grants.cache else []), [grants.cache_queue_arn]))
    if grants.cache:
        upstream_credentials = [_allow("UpstreamCredentials", ["secretsmanager:GetSecretValue"],
                                       list(grants.upstream_secrets))] if grants.upstream_secrets else []
        cache_objects = grants.objects(CACHE)
        api += [_allow("CacheObjects", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], cache_objects),
                *upstream_credentials]
        if grants.cache_queue_arn:
            api.append(_allow("CacheQueue", ["sqs:SendMessage"], [grants.cache_queue_arn]))
        copier += [_allow("Table", ["dynamodb:UpdateItem"], [grants.table_arn]),
                   _allow("CacheObjects", ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                                           "s3:ListMultipartUploadParts"], cache_objects),
                   *upstream_credentials]
        evictor += [_allow("Table", ["dynamodb:Scan", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                     "dynamodb:DeleteItem"], [grants.table_arn]),
                    _allow("CacheObjects", ["s3:DeleteObject", "s3:AbortMultipartUpload"], cache_objects)]
    return {
        # Every registry request, the token endpoint included (it signs tokens).
        "api_handler": _document(grants, *api),
        # The authorizer: checks registry tokens (token mode), or users and CI tokens (Basic
        # mode), and counts failed logins for the throttle.
        "credentials": _document(grants, _allow("Table", ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                                                [grants.table_arn]), read_secret),
        # Streams a direct upload's object, promotes or deletes it, and queues its own continuation.
        "verify_blob": _document(
            grants,
            _allow("Table", ["dynamodb:GetItem"] + ITEM_WRITES, [grants.table_arn]),
            _allow("Objects", ["s3:GetObject", "s3:DeleteObject"], grants.objects(DIRECT)),
            _allow("Queue", ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                             "sqs:SendMessage"], [grants.queue_arn]),
        ),
        # Reads idle uploads from the sweep index, deletes them with their parts and pieces;
        # lists each past hour's pieces, asks which a record names, deletes the others; records
        # its runs; deletes the manifest bodies requests left unsettled that no record names;
        # aborts the open multipart uploads no record names.
        "purge_uploads": _document(
            grants,
            _allow("Table", ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem",
                             "dynamodb:DeleteItem"], [grants.table_arn]),
            _allow("SweepIndex", ["dynamodb:Query"], [grants.sweep_index_arn]),
            _allow("Objects", ["s3:DeleteObject", "s3:AbortMultipartUpload"], grants.objects(BLOBS, DIRECT)),
            # Manifest bodies requests left unsettled: the registry's, and the cache's when it is on.
            _allow("UnsettledBodies", ["s3:DeleteObject"],
                   grants.objects(MANIFESTS, *([CACHE + MANIFESTS] if grants.cache else []))),
            {**_allow("ListPieces", ["s3:ListBucket"], [grants.bucket_arn]),
             "Condition": {"StringLike": {"s3:prefix": f"{PIECES}*"}}},
            # Open multipart uploads (keys and ids, no bytes), for those no record names; the
            # action takes no prefix condition.
            _allow("ListMultipartUploads", ["s3:ListBucketMultipartUploads"], [grants.bucket_arn]),
        ),
        # Retention rules and the sweep: reads repositories and the sweep index's candidates,
        # removes what nothing references.
        "collect_garbage": _document(
            grants,
            # PutItem: a manifest retention deletes whose body is in S3 marks it unsettled (in its transaction).
            _allow("Table", ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
                             "dynamodb:DeleteItem"], [grants.table_arn]),
            _allow("SweepIndex", ["dynamodb:Query"], [grants.sweep_index_arn]),
            _allow("Objects", ["s3:GetObject", "s3:DeleteObject"], every_prefix),
            missing_is_404,
        ),
        # The pull-through cache's copier: upstream bytes into S3, checkpointed in its records.
        "copy_blob": _document(grants, *copier),
        # Its eviction: scans the cache's records, removes what was not pulled for long.
        "collect_cache": _document(grants, *evictor),
    }
