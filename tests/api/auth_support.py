"""What the auth tests share: accounts, credentials, a push, and the two refusals."""

from __future__ import annotations

import base64
from typing import Any

from chalicelib.manifests import mediatypes as mt
from tests.conftest import ApiClient
from tests.helpers import digest_of, manifest_body

PASSWORD = "correct horse battery staple"


def basic(user: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_for(api: ApiClient, scopes: list[str], user: str | None = "alice", password: str = PASSWORD) -> str:
    query = "&".join(["service=berth"] + [f"scope={s}" for s in scopes])
    response = api.get(f"/token?{query}", headers=basic(user, password) if user else {})
    assert response.status == 200, response.body
    body = response.json()
    assert body["token"] == body["access_token"] and body["expires_in"] == 300 and body["issued_at"]
    return str(body["token"])


def push_image(api: ApiClient, repo: str, headers: dict[str, str], tag: str = "1") -> Any:
    """A whole image push with one set of credentials; returns the manifest PUT response."""
    config, layer = b"{}", repo.encode() * 10
    for blob in (config, layer):
        response = api.post(f"/v2/{repo}/blobs/uploads/?digest={digest_of(blob)}", body=blob, headers=headers)
        if response.status != 201:
            return response
    body = manifest_body(digest_of(config), [(digest_of(layer), len(layer))])
    return api.put(f"/v2/{repo}/manifests/{tag}", body=body, headers={**headers, "Content-Type": mt.OCI_MANIFEST})


def assert_challenge(response: Any, scheme: str) -> None:
    assert response.status == 401, response.body
    assert response.header("WWW-Authenticate", ) is not None, response.headers
    assert response.header("WWW-Authenticate").startswith(scheme)
    assert "insufficient_scope" not in response.header("WWW-Authenticate")
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def assert_denied(response: Any) -> None:
    """Token mode's refusal of valid credentials: final for docker and containerd."""
    assert response.status == 401, response.body
    assert response.header("WWW-Authenticate").startswith("Bearer ")
    assert response.header("WWW-Authenticate").endswith(',error="insufficient_scope"')
    error = response.json()["errors"][0]
    assert (error["code"], error["message"]) == ("DENIED", "requested access to the resource is denied")
    assert error["detail"]  # with one, docker takes the refusal whole and as final


