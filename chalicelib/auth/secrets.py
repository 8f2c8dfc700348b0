"""Passwords (bcrypt) and CI tokens (random secrets, stored as SHA-256). Secrets are only
ever compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

# Cost 10 is ~70 ms per check on one core: the token endpoint and the Basic-mode
# authorizer pay it once per credential per container (chalicelib/auth/authenticator.py).
# The authenticator's decoy hash has the same cost.
BCRYPT_ROUNDS = 10
CI_TOKEN_PREFIX = "berth_"
_CI_TOKEN = re.compile(r"^berth_([0-9a-f]{16})_([A-Za-z0-9_-]{43})\Z")


def _prehash(password: str) -> bytes:
    # bcrypt reads at most 72 bytes; hashing first makes every character count.
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    import bcrypt

    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode("ascii")


def check_password(password: str, hashed: str) -> bool:
    import bcrypt

    try:
        return bool(bcrypt.checkpw(_prehash(password), hashed.encode("ascii")))
    except ValueError:
        return False


@dataclass(frozen=True)
class CiToken:
    id: str
    secret: str

    def __str__(self) -> str:
        return f"{CI_TOKEN_PREFIX}{self.id}_{self.secret}"

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)


def new_ci_token() -> CiToken:
    return CiToken(secrets.token_hex(8), secrets.token_urlsafe(32))


def parse_ci_token(text: str) -> CiToken | None:
    match = _CI_TOKEN.match(text)
    return CiToken(match.group(1), match.group(2)) if match else None


def hash_secret(secret: str) -> str:
    """High-entropy secrets need no slow hash: SHA-256 keeps the check cheap."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
