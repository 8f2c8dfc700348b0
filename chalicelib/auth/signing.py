"""Where the signing key ring is kept, and its rotation (`berth key rotate`): in the stage's
Secrets Manager secret when one is configured, else in the table."""

from __future__ import annotations

import time

from chalicelib.auth.keys import DEFAULT_OVERLAP_SECONDS, LEGACY_KID, KeyRing, SigningKey, new_key
from chalicelib.storage.accounts import AccountStore, StoredKeys
from chalicelib.storage.secrets import SecretStore

_ROTATE_ATTEMPTS = 5


class SigningKeys:
    def __init__(self, accounts: AccountStore, secret: SecretStore | None) -> None:
        self._accounts = accounts
        self._secret = secret

    def load(self) -> KeyRing:
        if self._secret is not None:
            return KeyRing.from_secret_string(self._secret.read())
        return _ring(self._stored())

    def _stored(self) -> StoredKeys:
        """The ring in the table, made on first use (once, whichever container gets there first)."""
        stored = self._accounts.get_signing_keys()
        if stored is None:
            self._accounts.put_signing_keys(KeyRing((new_key(int(time.time())),)).to_json(), 0)
            stored = self._accounts.get_signing_keys()
            assert stored is not None
        return stored

    def rotate(self, overlap_seconds: int = DEFAULT_OVERLAP_SECONDS) -> KeyRing:
        now = int(time.time())
        if self._secret is not None:
            ring = KeyRing.from_secret_string(self._secret.read()).rotated(now, overlap_seconds)
            self._secret.write(ring.to_json())
            return ring
        for _ in range(_ROTATE_ATTEMPTS):
            stored = self._stored()
            ring = _ring(stored).rotated(now, overlap_seconds)
            if self._accounts.put_signing_keys(ring.to_json(), stored.version):
                return ring
        raise RuntimeError("the key ring kept changing while it was rotated; try again")


def _ring(stored: StoredKeys) -> KeyRing:
    if stored.ring is not None:
        return KeyRing.from_json(stored.ring)
    assert stored.legacy_key is not None
    return KeyRing((SigningKey(LEGACY_KID, stored.legacy_key, 0),))
