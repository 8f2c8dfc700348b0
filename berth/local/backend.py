"""S3 and DynamoDB for the local mode: moto's server in this process, provisioned.

`start()` also points this process's environment at it, so it must run before `app` (or
anything else that reads `Settings.from_env()` or builds boto3 clients) is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from moto.server import ThreadedMotoServer

from berth.local import motoguard
from berth.local.provision import provision, provision_verify_queue

REGION = "us-east-1"


@dataclass
class Backend:
    server: ThreadedMotoServer
    endpoint: str
    bucket: str
    table: str
    verify_queue_url: str

    def stop(self) -> None:
        self.server.stop()


def bootstrap_user(spec: str | None) -> str:
    """`BERTH_BOOTSTRAP_USER=name:password`: that user, with every action on every repository,
    so the local mode with auth on is usable in one command. Returns what auth is on."""
    from chalicelib.auth.permissions import normalise_actions
    from chalicelib.auth.secrets import hash_password
    from chalicelib.registry import Registry
    from chalicelib.settings import Settings

    settings = Settings.from_env()
    if spec:
        name, sep, password = spec.partition(":")
        if not sep or not name or not password:
            raise SystemExit("BERTH_BOOTSTRAP_USER must be name:password")
        accounts = Registry.build(settings).accounts
        accounts.add_user(name, hash_password(password))
        accounts.grant(name, "*", normalise_actions(["*"]))
        return f"{settings.auth_mode} (user {name} may do everything)"
    return settings.auth_mode


def cache_rules() -> str:
    """The pull-through rules (BERTH_UPSTREAMS), one banner line each; "" when there are none."""
    from chalicelib.settings import Settings

    lines = [f"  cache: {rule.prefix or '(every other name)'} -> {rule.url} (tags fresh {rule.ttl_seconds} s"
             f"{', with credentials' if rule.credentials else ''})\n" for rule in Settings.from_env().cache.rules]
    return "".join(lines)


def start(port: int = 0) -> Backend:
    """Start moto on 127.0.0.1 (a free port when 0), point the environment at it, create the
    bucket and table."""
    motoguard.install()  # before moto answers anything: it loses writes under concurrency otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    endpoint = f"http://{host}:{bound}"
    # Dummy credentials always: the local mode must never reach a real account.
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update({
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    })
    # The access log says what happened; Lambda's JSON request logs and EMF metrics would
    # only repeat it on the terminal. Set these to see them.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    bucket = os.environ.setdefault("BERTH_BUCKET", "berth-blobs")
    table = os.environ.setdefault("BERTH_TABLE", "berth")

    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    provision(s3, boto3.client("dynamodb", region_name=REGION), bucket, table)
    queue_url = provision_verify_queue(s3, boto3.client("sqs", region_name=REGION), bucket,
                                       os.environ.setdefault("BERTH_VERIFY_QUEUE", "berth-verify"))
    os.environ["BERTH_VERIFY_QUEUE_URL"] = queue_url
    # The pull-through cache's copy jobs (docs/cache.md).
    cache_queue = os.environ.setdefault("BERTH_CACHE_QUEUE", "berth-cache")
    os.environ["BERTH_CACHE_QUEUE_URL"] = boto3.client("sqs", region_name=REGION).create_queue(
        QueueName=cache_queue)["QueueUrl"]
    return Backend(server, endpoint, bucket, table, queue_url)
