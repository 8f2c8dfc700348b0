"""Users, their grants, CI tokens and the token signing key, in the registry's table.

Everything lives in one partition (`pk = account`): accounts are few, and listing them is
then a Query. Items: `user#<name>` {password_hash, grants: {pattern: [actions]}, uid (random,
new for every account, so a name removed and added again is another account), generation
(counts password changes)}, `token#<user>#<id>` {secret_hash, expires, description, created},
`signing-key` {ring: the key ring as JSON, version; before rings: key}.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from chalicelib.auth.permissions import Grant
from chalicelib.storage.table import Table, to_item

ACCOUNT = "account"
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str | None  # None for the anonymous account, which cannot log in
    grants: list[Grant]
    uid: str = ""  # "" for accounts made before uids existed
    generation: int = 0


@dataclass(frozen=True)
class TokenRecord:
    user: str
    id: str
    secret_hash: str
    expires: int | None
    description: str
    created: int

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


@dataclass(frozen=True)
class StoredKeys:
    ring: str | None  # the key ring, as JSON text
    legacy_key: bytes | None  # a key stored before rings
    version: int  # of the ring; 0 before one was stored


def _grants(raw: dict[str, list[str]] | None) -> list[Grant]:
    return [Grant(pattern, frozenset(actions)) for pattern, actions in sorted((raw or {}).items())]


def _user(name: str, item: dict[str, Any]) -> User:
    return User(name, item.get("password_hash"), _grants(item.get("grants")), str(item.get("uid", "")),
                int(item.get("generation", 0)))


class AccountStore(Table):
    def _key(self, sk: str) -> dict[str, Any]:
        return to_item({"pk": ACCOUNT, "sk": sk})

    # ---- users ---------------------------------------------------------------------------

    def get_user(self, name: str) -> User | None:
        item = self._get(ACCOUNT, f"user#{name}", consistent=True)  # every login decides on it
        return _user(name, item) if item is not None else None

    def add_user(self, name: str, password_hash: str | None) -> bool:
        values: dict[str, Any] = {"pk": ACCOUNT, "sk": f"user#{name}", "password_hash": password_hash, "grants": {},
                                  "created": int(time.time()), "uid": secrets.token_hex(12), "generation": 0}
        return self._conditionally("put_item", Item=to_item(values), ConditionExpression="attribute_not_exists(pk)")

    def set_password(self, name: str, password_hash: str) -> bool:
        return self._conditionally(
            "update_item", Key=self._key(f"user#{name}"),
            UpdateExpression="SET password_hash = :h ADD generation :one",
            ConditionExpression="attribute_exists(pk)", ExpressionAttributeValues=to_item({":h": password_hash,
                                                                                          ":one": 1}))

    def remove_user(self, name: str) -> bool:
        for token in self.list_tokens(name):
            self.remove_token(name, token.id)
        return self._delete_existing(ACCOUNT, f"user#{name}")

    def list_users(self) -> list[User]:
        return [_user(item["sk"].split("#", 1)[1], item) for item in self._query(ACCOUNT, "user#")]

    def grant(self, name: str, pattern: str, actions: frozenset[str]) -> bool:
        return self._conditionally(
            "update_item", Key=self._key(f"user#{name}"), UpdateExpression="SET grants.#p = :a",
            ConditionExpression="attribute_exists(pk)", ExpressionAttributeNames={"#p": pattern},
            ExpressionAttributeValues=to_item({":a": sorted(actions)}))

    def revoke(self, name: str, pattern: str) -> bool:
        return self._conditionally(
            "update_item", Key=self._key(f"user#{name}"), UpdateExpression="REMOVE grants.#p",
            ConditionExpression="attribute_exists(pk) AND attribute_exists(grants.#p)",
            ExpressionAttributeNames={"#p": pattern})

    # ---- CI tokens -----------------------------------------------------------------------

    def add_token(self, record: TokenRecord) -> None:
        values = {"pk": ACCOUNT, "sk": f"token#{record.user}#{record.id}", "secret_hash": record.secret_hash,
                  "expires": record.expires, "description": record.description, "created": record.created}
        self._db.put_item(TableName=self.table, Item=to_item(values), ConditionExpression="attribute_not_exists(pk)")

    @staticmethod
    def _token(item: dict[str, Any]) -> TokenRecord:
        _, user, token_id = item["sk"].split("#", 2)
        return TokenRecord(user, token_id, item["secret_hash"], item.get("expires"), item.get("description", ""),
                           item["created"])

    def get_token(self, user: str, token_id: str) -> TokenRecord | None:
        item = self._get(ACCOUNT, f"token#{user}#{token_id}", consistent=True)
        return self._token(item) if item else None

    def list_tokens(self, user: str) -> list[TokenRecord]:
        return [self._token(item) for item in self._query(ACCOUNT, f"token#{user}#")]

    def remove_token(self, user: str, token_id: str) -> bool:
        return self._delete_existing(ACCOUNT, f"token#{user}#{token_id}")

    # ---- signing keys --------------------------------------------------------------------

    def get_signing_keys(self) -> StoredKeys | None:
        """The key ring kept in the table (local mode, and deployments that configure no secret)."""
        item = self._get(ACCOUNT, "signing-key", consistent=True)
        if item is None:
            return None
        if "ring" not in item:
            return StoredKeys(None, bytes(item["key"]), 0)
        return StoredKeys(str(item["ring"]), None, int(item["version"]))

    def put_signing_keys(self, ring: str, version: int) -> bool:
        """Replace the ring that had `version` (0: none yet, or a key stored before rings)."""
        values = {"pk": ACCOUNT, "sk": "signing-key", "ring": ring, "version": version + 1}
        if version == 0:
            return self._conditionally("put_item", Item=to_item(values),
                                       ConditionExpression="attribute_not_exists(pk) OR attribute_not_exists(ring)")
        return self._conditionally("put_item", Item=to_item(values), ConditionExpression="version = :v",
                                   ExpressionAttributeValues=to_item({":v": version}))
