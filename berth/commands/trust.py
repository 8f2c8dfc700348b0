"""`berth trust ...`: trust rules, which give CI jobs (OIDC) and AWS identities (IAM) grants
without a stored secret (docs/auth.md, "Keyless access")."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from berth import target
from chalicelib.auth.federation import AWS, OIDC, TrustRule, check_oidc_rule, check_principal
from chalicelib.auth.permissions import describe, parse_grant
from chalicelib.storage.clients import AwsClients
from chalicelib.storage.trust import TrustStore


def register(subparsers: Any) -> None:
    trust = subparsers.add_parser("trust", help="trust rules: grants for CI jobs' OIDC tokens and AWS identities")
    actions = trust.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add", help="add a rule",
        description="OIDC: --issuer, --audience and at least one --claim; AWS: --aws-principal. Each matching "
                    "rule adds its --grant entries to what the identity may do.")
    add.add_argument("--issuer", help="OIDC issuer URL, exactly as its tokens' iss "
                                      "(GitHub: https://token.actions.githubusercontent.com)")
    add.add_argument("--audience", help="OIDC: the aud tokens must carry (e.g. the registry's host name)")
    add.add_argument("--claim", action="append", default=[], metavar="NAME=PATTERN",
                     help="OIDC: a condition on a claim, e.g. repository=org/app, ref=refs/heads/main (repeatable; "
                          "all must hold; * and ? as in grants)")
    add.add_argument("--aws-principal", metavar="ARN|ACCOUNT",
                     help="AWS: arn:aws:iam::ACCOUNT:role/NAME (its sessions too), ...:user/NAME, "
                          "arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION, or a 12-digit account")
    add.add_argument("--grant", action="append", default=[], required=True, metavar="PATTERN=ACTIONS",
                     help="e.g. 'team/app=pull,push' (repeatable)")
    add.add_argument("--description", default="")
    add.set_defaults(run=add_rule)
    listing = actions.add_parser("list", help="list the rules")
    listing.set_defaults(run=list_rules)
    remove = actions.add_parser("remove", help="remove a rule by its id")
    remove.add_argument("id")
    remove.set_defaults(run=remove_rule)
    for parser in (add, listing, remove):
        target.add_arguments(parser)


def _store(args: argparse.Namespace) -> TrustStore:
    settings = target.registry(args).settings
    return TrustStore(AwsClients(settings.region), settings.table)


def _claims(texts: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for text in texts:
        left, sep, right = text.partition("=")
        if not sep or not left or not right:
            raise ValueError(f"--claim wants NAME=PATTERN, not {text!r}")
        pairs.append((left, right))
    return pairs


def _rule(args: argparse.Namespace) -> TrustRule:
    grants = [parse_grant(text) for text in args.grant]
    if args.aws_principal:
        if args.issuer or args.audience or args.claim:
            raise ValueError("a rule is either OIDC (--issuer, --audience, --claim) or AWS (--aws-principal)")
        check_principal(args.aws_principal)
        return TrustRule("", AWS, grants, principal=args.aws_principal, description=args.description)
    conditions = dict(_claims(args.claim))
    check_oidc_rule(args.issuer or "", args.audience or "", conditions)
    return TrustRule("", OIDC, grants, issuer=args.issuer, audience=args.audience, conditions=conditions,
                     description=args.description)


def _fail(message: str) -> int:
    print(f"berth trust: {message}", file=sys.stderr)
    return 1


def add_rule(args: argparse.Namespace) -> int:
    try:
        rule = _rule(args)
    except ValueError as error:
        return _fail(str(error))
    stored = _store(args).add(rule)
    print(f"added rule {stored.id}: {stored.describe()}")
    return 0


def list_rules(args: argparse.Namespace) -> int:
    for rule in _store(args).rules():
        print(f"{rule.id}\t{rule.describe()}\t{describe(rule.grants)}\t{rule.description}".rstrip())
    return 0


def remove_rule(args: argparse.Namespace) -> int:
    if not _store(args).remove(args.id):
        return _fail(f"no rule {args.id}")
    print(f"removed rule {args.id}")
    return 0
