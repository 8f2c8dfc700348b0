"""Grants, scopes and the checks between them. Pure logic.

A grant maps a repository pattern (`team/*`, `*`, `library/ubuntu`; `*` and `?` as in shell
globs, `*` also across `/`) to actions. A scope is what one request needs, in the Docker
token protocol's form: `repository:<name>:<action>[,<action>]` or `registry:catalog:*`.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

PULL, PUSH, DELETE, ALL = "pull", "push", "delete", "*"
ACTIONS = (PULL, PUSH, DELETE)
_SCOPE = re.compile(r"^(repository|registry)(?:\([a-z0-9]+\))?:(.+):([a-z*]+(?:,[a-z*]+)*)\Z")


@dataclass(frozen=True)
class Grant:
    pattern: str
    actions: frozenset[str]

    def covers(self, repo: str) -> bool:
        return fnmatch.fnmatchcase(repo, self.pattern)


@dataclass(frozen=True)
class Scope:
    type: str  # "repository" or "registry"
    name: str  # a repository name, or "catalog"
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


CATALOG = Scope("registry", "catalog", (ALL,))


def normalise_actions(actions: list[str] | tuple[str, ...]) -> frozenset[str]:
    """`*` stands for every action; unknown actions are refused by name."""
    unknown = set(actions) - set(ACTIONS) - {ALL}
    if unknown:
        raise ValueError(f"unknown action(s): {', '.join(sorted(unknown))}; use pull, push, delete or *")
    return frozenset(ACTIONS) if ALL in actions else frozenset(actions)


def granted(grants: list[Grant], scope: Scope) -> tuple[str, ...]:
    """The actions of `scope` these grants allow, in the scope's order."""
    if scope.type == "registry":
        # The catalog is open to anyone who may pull something; the listing is then filtered.
        return scope.actions if scope.name == "catalog" and any(PULL in g.actions for g in grants) else ()
    allowed: set[str] = set()
    for grant in grants:
        if grant.covers(scope.name):
            allowed |= grant.actions
    wanted = ACTIONS if ALL in scope.actions else scope.actions
    return tuple(a for a in wanted if a in allowed)


def parse_scope(text: str) -> Scope | None:
    """A scope string from a token request; None when malformed (it is then ignored)."""
    match = _SCOPE.match(text.strip())
    if match is None:
        return None
    kind, name, actions = match.groups()
    return Scope(kind, name, tuple(dict.fromkeys(actions.split(","))))


def may_read(grants: list[Grant], repo: str) -> bool:
    return PULL in granted(grants, Scope("repository", repo, (PULL,)))
