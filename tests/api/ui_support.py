"""What the web page tests share: a visitor that keeps cookies and posts forms through the API
Gateway stand-in, and a registry filled the ways clients fill one (an image with a full
config, an index of two platforms, a signature referring to the image, more repositories)."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from berth.local.apigateway import GatewayResponse
from chalicelib.auth.authenticator import Authenticator
from chalicelib.auth.permissions import normalise_actions
from chalicelib.auth.secrets import hash_password
from chalicelib.registry import Registry
from chalicelib.storage.keys import repo_pk, tag_sk
from chalicelib.storage.table import to_item
from chalicelib.storage.throttle import FailureCounters
from tests.api.oci_fixtures import (
    OCI_CONFIG,
    Blob,
    Manifest,
    empty_json_blob,
    image_index,
    image_manifest,
    push_blob,
    push_manifest,
    random_blob,
)
from tests.conftest import ApiClient

PASSWORD = "correct horse battery staple"
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
USERS = {"admin": {"*": ["*"]}, "reader": {"team/*": ["pull"]}, "deleter": {"team/*": ["pull", "delete"]}}


@dataclass
class Visitor:
    """A browser, as far as cookies and forms go."""

    api: ApiClient
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> GatewayResponse:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        response = self.api.request(method, path, body=body, headers=sent)
        for name, value in response.headers:
            if name.lower() == "set-cookie":
                pair, _, attributes = value.partition(";")
                key, _, content = pair.partition("=")
                if "Max-Age=0" in attributes:
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = content
        return response

    def get(self, path: str, **kw: Any) -> GatewayResponse:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict[str, str], **kw: Any) -> GatewayResponse:
        return self.request("POST", path, form=form, **kw)

    def log_in(self, user: str, password: str = PASSWORD, target: str = "/ui/") -> GatewayResponse:
        form = self.get(f"/ui/login?next={target}")
        assert form.status == 200, form.body
        return self.post("/ui/login", {"csrf": csrf_of(form), "user": user, "password": password, "next": target})


def csrf_of(response: GatewayResponse) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', response.body.decode())
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def text(response: GatewayResponse) -> str:
    return response.body.decode()


@dataclass
class Content:
    image: Manifest  # team/app:1.0
    config: Blob
    amd64: Manifest
    arm64: Manifest
    index: Manifest  # team/app:multi
    signature: Manifest  # refers to the image
    tools: Manifest  # team/tools:latest
    secret: Manifest  # other/secret:1


def config_blob(arch: str, **extra: Any) -> Blob:
    config = {"architecture": arch, "os": "linux", "created": "2024-05-01T10:00:00Z",
              "config": {"Entrypoint": ["/app"], "Cmd": ["--serve"], "Env": ["PATH=/usr/bin", f"ARCH={arch}"],
                         # A label of its own per call: configs are cached by digest across tests.
                         "Labels": {"org.opencontainers.image.source": "https://example.com/app",
                                    "org.example.build": secrets.token_hex(8)},
                         "WorkingDir": "/srv", "ExposedPorts": {"8080/tcp": {}}},
              "history": [{"created": "2024-05-01T09:00:00Z", "created_by": "ADD rootfs.tar /"},
                          {"created": "2024-05-01T10:00:00Z", "created_by": "ENV ARCH", "empty_layer": True}],
              "rootfs": {"type": "layers", "diff_ids": []}, **extra}
    return Blob(json.dumps(config).encode(), OCI_CONFIG)


def push_image(api: ApiClient, repo: str, tag: str | None, arch: str = "amd64", layer_size: int = 3000,
               **manifest: Any) -> tuple[Manifest, Blob]:
    config, layer = config_blob(arch), random_blob(layer_size)
    for blob in (config, layer):
        push_blob(api, repo, blob)
    image = image_manifest(config, [layer], **manifest)
    response = push_manifest(api, repo, tag or image.digest, image)
    assert response.status == 201, response.body
    return image, config


def pushed_earlier(registry: Registry, repo: str, tag: str, seconds: int) -> None:
    """Move a tag's push time back, as if pushed `seconds` before (pushes in one test share a second)."""
    assert registry.clients is not None
    registry.clients.dynamodb.update_item(
        TableName=registry.settings.table, Key=to_item({"pk": repo_pk(repo), "sk": tag_sk(tag)}),
        UpdateExpression="SET created = created - :s", ExpressionAttributeValues=to_item({":s": seconds}))


def fill(api: ApiClient, registry: Registry) -> Content:
    image, config = push_image(api, "team/app", "1.0")
    pushed_earlier(registry, "team/app", "1.0", 3600)
    amd64, _ = push_image(api, "team/app", None, "amd64")
    arm64, _ = push_image(api, "team/app", None, "arm64")
    index = image_index([amd64, arm64])
    doc = json.loads(index.body)
    for entry, arch in zip(doc["manifests"], ("amd64", "arm64"), strict=True):
        entry["platform"] = {"os": "linux", "architecture": arch}
    index = Manifest(json.dumps(doc).encode(), index.media_type)
    assert push_manifest(api, "team/app", "multi", index).status == 201
    empty = empty_json_blob()
    push_blob(api, "team/app", empty)
    signature = image_manifest(empty, [empty], artifact_type=SIGNATURE, subject=image,
                               annotations={"dev.sigstore.cosign/signer": "ci@example.com"})
    assert push_manifest(api, "team/app", signature.digest, signature).status == 201
    tools, _ = push_image(api, "team/tools", "latest")
    secret, _ = push_image(api, "other/secret", "1")
    return Content(image, config, amd64, arm64, index, signature, tools, secret)


def add_users(registry: Registry) -> None:
    for name, grants in USERS.items():
        registry.accounts.add_user(name, hash_password(PASSWORD, rounds=4))
        for pattern, actions in grants.items():
            registry.accounts.grant(name, pattern, normalise_actions(actions))


def with_settings(registry: Registry, **changes: Any) -> Registry:
    """The same storage under other settings (auth on, other lifecycle rules), as a Lambda
    deployed with them would see it."""
    settings = replace(registry.settings, **changes)
    failures = FailureCounters(registry.clients, settings.table)
    auth = Authenticator(settings, registry.accounts, registry.auth.keys, failures)
    return replace(registry, settings=settings, auth=auth)
