"""A real OIDC issuer on the loopback for the keyless tests: RSA and EC keys made here with
`cryptography`, a discovery document, a JWKS endpoint that counts its fetches, and GitHub
Actions' token request endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`), which mints ID tokens."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    @classmethod
    def new(cls, alg: str = "RS256") -> SigningKey:
        private = (ec.generate_private_key(ec.SECP256R1()) if alg == "ES256"
                   else rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return cls(f"key-{secrets.token_hex(4)}", alg, private)

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": self.alg}


@dataclass
class Issuer:
    """Keys and tokens; `url` is set once served."""

    url: str = ""
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.new("RS256"), SigningKey.new("ES256")])
    fetches: int = 0  # JWKS documents served
    request_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))  # GitHub's bearer
    github_claims: dict[str, Any] = field(default_factory=dict)  # what the GitHub endpoint's tokens carry

    def token(self, claims: dict[str, Any] | None = None, key: SigningKey | None = None, lifetime: int = 600,
              **headers: Any) -> str:
        signer = key or self.keys[0]
        now = int(time.time())
        payload = {"iss": self.url, "sub": "repo:org/app:ref:refs/heads/main", "aud": "registry.test",
                   "iat": now, "nbf": now - 5, "exp": now + lifetime, **(claims or {})}
        return jwt.encode(payload, signer.private, algorithm=signer.alg, headers={"kid": signer.kid, **headers})

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, value: Any) -> None:
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/.well-known/openid-configuration":
                self._json(200, {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/keys",
                                 "id_token_signing_alg_values_supported": ["RS256", "ES256"]})
            elif parts.path == "/keys":
                issuer.fetches += 1
                self._json(200, issuer.jwks())
            elif parts.path == "/github":
                if self.headers.get("Authorization") != f"bearer {issuer.request_token}":
                    self._json(401, {"message": "bad request token"})
                    return
                audience = parse_qs(parts.query).get("audience", ["https://github.com/org"])[0]
                self._json(200, {"value": issuer.token({"aud": audience, **issuer.github_claims})})
            else:
                self._json(404, {})

    return Handler


@contextmanager
def serving(issuer: Issuer | None = None) -> Iterator[Issuer]:
    """The issuer at http://127.0.0.1:<free port>, until the block ends."""
    issuer = issuer or Issuer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(issuer))
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
