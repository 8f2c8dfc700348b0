"""Lambda SnapStart: app.py registers its hooks with `snapshot_restore_py` (as Lambda's Python
runtime provides it), and they are run here as the runtime runs them: the before-snapshot
hooks after the import, the after-restore hooks in each container made from the snapshot.
What a restored container must not share with the snapshot, it does not: the signing key, the
credentials and the `random` state are its own."""

from __future__ import annotations

import base64
import importlib.util
import random
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import snapshot_restore_py

from chalicelib.auth.permissions import normalise_actions
from chalicelib.auth.secrets import hash_password
from chalicelib.registry import Registry
from chalicelib.snapstart import after_restore, before_snapshot
from tests.conftest import ApiClient
from tests.helpers import APP

AT_SNAPSHOT, AFTER_RESTORE = "signing-key-at-snapshot-" * 2, "signing-key-after-restore-" * 2


def snapshot() -> None:
    # The runtime runs before-snapshot hooks in the reverse order of registration.
    for hook, args, kwargs in reversed(snapshot_restore_py.get_before_snapshot()):
        hook(*args, **kwargs)


def restore() -> None:
    for hook, args, kwargs in snapshot_restore_py.get_after_restore():
        hook(*args, **kwargs)


@pytest.fixture
def container(aws: Any, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Any:
    """app.py loaded as Lambda loads it for a snapshot: token auth, the signing key in Secrets
    Manager, the test's bucket and table, nothing else registered with the runtime."""
    secret = aws.secretsmanager.create_secret(Name=f"signing-{uuid.uuid4().hex}", SecretString=AT_SNAPSHOT)
    monkeypatch.setenv("BERTH_BUCKET", registry.settings.bucket)
    monkeypatch.setenv("BERTH_TABLE", registry.settings.table)
    monkeypatch.setenv("BERTH_AUTH", "token")
    monkeypatch.setenv("BERTH_SIGNING_SECRET_ID", secret["ARN"])
    registry.accounts.add_user("alice", hash_password("pw"))
    registry.accounts.grant("alice", "team/*", normalise_actions(["pull"]))
    monkeypatch.setattr(snapshot_restore_py, "_before_snapshot_registry", [])
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", [])
    spec = importlib.util.spec_from_file_location(f"berth_snap_{uuid.uuid4().hex}", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.secret_arn = secret["ARN"]
    return module


def test_app_registers_both_hooks_for_its_registry(container: Any) -> None:
    assert [(hook, args) for hook, args, _ in snapshot_restore_py.get_before_snapshot()] == \
        [(before_snapshot, (container.registry,))]
    assert [(hook, args) for hook, args, _ in snapshot_restore_py.get_after_restore()] == \
        [(after_restore, (container.registry,))]


def test_a_key_rotated_after_the_snapshot_signs_the_restored_containers_tokens(container: Any, aws: Any) -> None:
    """Nothing secret is read before the snapshot: the key the container signs with is the one
    Secrets Manager holds after the restore."""
    snapshot()
    aws.secretsmanager.put_secret_value(SecretId=container.secret_arn, SecretString=AFTER_RESTORE)
    restore()
    basic = base64.b64encode(b"alice:pw").decode()
    response = ApiClient(container.app).get("/token?service=berth&scope=repository:team/app:pull",
                                            headers={"Authorization": f"Basic {basic}"})
    assert response.status == 200, response.body
    token = response.json()["token"]
    claims = jwt.decode(token, AFTER_RESTORE, algorithms=["HS256"], audience="berth")
    assert claims["sub"] == "alice"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, AT_SNAPSHOT, algorithms=["HS256"], audience="berth")


def test_the_snapshot_holds_clients_and_a_restored_container_signs_with_its_own_credentials(
        container: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot()
    built = container.registry.clients.s3
    assert container.registry.clients.dynamodb is not None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "restored-container-key")
    restore()
    assert container.registry.clients.s3 is not built
    url = container.registry.blobs.presigned_get("blobs/x")
    assert parse_qs(urlsplit(url).query)["X-Amz-Credential"][0].startswith("restored-container-key/")


def test_containers_restored_from_one_snapshot_draw_different_random_numbers(container: Any) -> None:
    snapshot()
    state = random.getstate()  # what every container restored from this snapshot starts with
    draws = []
    for _ in range(2):
        random.setstate(state)
        restore()
        draws.append(random.random())
    assert draws[0] != draws[1]


def test_without_the_runtime_library_nothing_is_registered(registry: Registry,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from chalicelib import snapstart

    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # as on this machine without the package
    assert snapstart.register(registry) is False
