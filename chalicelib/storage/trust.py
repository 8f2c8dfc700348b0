"""Trust rules (docs/auth.md, "Keyless access"), in the registry's table.

One partition, `pk = trust`, one item per rule: `rule#<id>` {kind, issuer, audience,
conditions: {claim: pattern}, principal, grants: {pattern: [actions]}, description, created}.
Rules are few and every keyless login reads them all (one Query), so a change holds on the
next login.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from chalicelib.auth.federation import TrustRule
from chalicelib.auth.permissions import Grant
from chalicelib.storage.table import Table, to_item

TRUST = "trust"


def _rule(item: dict[str, Any]) -> TrustRule:
    grants = [Grant(pattern, frozenset(actions)) for pattern, actions in sorted(item.get("grants", {}).items())]
    return TrustRule(id=item["sk"].split("#", 1)[1], kind=item["kind"], grants=grants,
                     issuer=item.get("issuer", ""), audience=item.get("audience", ""),
                     conditions=dict(item.get("conditions", {})), principal=item.get("principal", ""),
                     description=item.get("description", ""))


class TrustStore(Table):
    def rules(self) -> list[TrustRule]:
        return [_rule(item) for item in self._query(TRUST, "rule#")]

    def add(self, rule: TrustRule) -> TrustRule:
        """Stores `rule` under a new id (its own is ignored) and returns it with that id."""
        stored = TrustRule(**{**rule.__dict__, "id": secrets.token_hex(4)})
        values = {"pk": TRUST, "sk": f"rule#{stored.id}", "kind": stored.kind, "issuer": stored.issuer or None,
                  "audience": stored.audience or None, "conditions": dict(stored.conditions) or None,
                  "principal": stored.principal or None, "description": stored.description or None,
                  "grants": {g.pattern: sorted(g.actions) for g in stored.grants}, "created": int(time.time())}
        if not self._conditionally("put_item", Item=to_item(values), ConditionExpression="attribute_not_exists(pk)"):
            raise RuntimeError("rule id collision; try again")
        return stored

    def remove(self, rule_id: str) -> bool:
        return self._delete_existing(TRUST, f"rule#{rule_id}")
