"""Grants, scopes and the checks between them. Pure logic.

A grant maps a repository pattern (`team/*`, `*`, `library/ubuntu`) to actions. Patterns are
the server's own and have two wildcards only: `*` (any characters, `/` included) and `?` (any
one character); every other character, `[` and `\\` among them, stands for itself. A scope is
what one request needs, in the Docker token protocol's form: `repository:<name>:<action>[,...]`
or `registry:catalog:*`. The name in a scope is always a name, never a pattern: a scope whose
name is not a repository name grants nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.naming import valid_name

PULL, PUSH, DELETE, ALL = "pull", "push", "delete", "*"
ACTIONS = (PULL, PUSH, DELETE)
_SCOPE = re.compile(r"^(repository|registry)(?:\([a-z0-9]+\))?:(.+):([a-z*]+(?:,[a-z*]+)*)\Z")
# What a grant pattern may hold: the characters of repository names, and the two wildcards.
_PATTERN = re.compile(r"^[a-z0-9._/*?-]{1,255}\Z")


def pattern_matches(pattern: str, name: str) -> bool:
    """`*` (any characters) and `?` (any one) are wildcards; nothing else is. Linear in the
    lengths, whatever the pattern: a `*` that fails to match is retried once from one place
    further, never by backtracking through every earlier `*`."""
    p = n = 0
    star, resume = -1, 0
    while n < len(name):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, n
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", name[n]):
            p += 1
            n += 1
        elif star >= 0:
            resume += 1
            p, n = star + 1, resume
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def check_pattern(pattern: str) -> str:
    """A grant pattern as `berth user grant` accepts it."""
    if not _PATTERN.match(pattern):
        raise ValueError(f"a grant pattern holds lowercase letters, digits, '.', '_', '-', '/' and the wildcards "
                         f"'*' and '?', not {pattern[:80]!r}")
    return pattern


@dataclass(frozen=True)
class Grant:
    pattern: str
    actions: frozenset[str]

    def covers(self, repo: str) -> bool:
        return pattern_matches(self.pattern, repo)


@dataclass(frozen=True)
class Scope:
    type: str  # "repository" or "registry"
    name: str  # a repository name, or "catalog"
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


CATALOG = Scope("registry", "catalog", (ALL,))


def parse_grant(text: str) -> Grant:
    """A grant as the commands take it, `PATTERN=ACTIONS` (`team/*=pull,push`)."""
    pattern, sep, actions = text.rpartition("=")
    if not sep or not pattern:
        raise ValueError(f"a grant is PATTERN=ACTIONS, not {text[:80]!r}")
    return Grant(check_pattern(pattern), normalise_actions(actions.split(",")))


def describe(grants: list[Grant]) -> str:
    """Grants as the commands print them, the form `parse_grant` reads."""
    return ", ".join(f"{g.pattern}={','.join(sorted(g.actions))}" for g in grants)


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
    if scope.type != "repository" or not valid_name(scope.name):
        return ()
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
