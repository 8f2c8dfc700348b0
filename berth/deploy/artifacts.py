"""What `aws cloudformation package` would do for the app stack, with boto3: the code bundle
and the template go to the blob bucket under `deploy/<stage>/`, named by content, and the
template's functions point at the bundle there.

Why the blob bucket: it exists before the app stack (the storage stack made it), is private,
encrypted and kept, so nothing else has to be created or emptied on teardown. No function's
policy reaches `deploy/`, and only direct/ raises S3 notifications. Old bundles are removed
once a deployment succeeds: a rollback then has nothing older to go back to.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

BUNDLE, TEMPLATE = "deployment.zip", "sam.json"


def prefix(stage: str) -> str:
    return f"deploy/{stage}/"


def _put(s3: Any, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def upload(s3: Any, bucket: str, stage: str, package_dir: Path) -> tuple[str, str]:
    """Upload the bundle and the template that points at it; returns the template's URL (for
    CloudFormation) and the bundle's key."""
    bundle = (package_dir / BUNDLE).read_bytes()
    bundle_key = f"{prefix(stage)}{hashlib.sha256(bundle).hexdigest()}.zip"
    _put(s3, bucket, bundle_key, bundle)
    template = json.loads((package_dir / TEMPLATE).read_text())
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if properties.get("CodeUri") == f"./{BUNDLE}":
            properties["CodeUri"] = {"Bucket": bucket, "Key": bundle_key}
    body = json.dumps(template, indent=1).encode()
    template_key = f"{prefix(stage)}{hashlib.sha256(body).hexdigest()}.json"
    _put(s3, bucket, template_key, body)
    # Path-style: valid in every partition, and for bucket names with dots.
    return f"{s3.meta.endpoint_url}/{bucket}/{template_key}", bundle_key


def prune(s3: Any, bucket: str, stage: str, keep: set[str]) -> int:
    """Delete the stage's deployment artifacts except `keep`; returns how many went."""
    keys = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix(stage))
            for obj in page.get("Contents", []) if obj["Key"] not in keep]
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]],
                                                 "Quiet": True})
    return len(keys)
