"""`berth user ...` and `berth token ...`: accounts, grants and CI tokens."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any

from berth import target
from chalicelib.auth.keyless import KeylessLogin
from chalicelib.auth.permissions import check_pattern, describe, normalise_actions, parse_grant
from chalicelib.auth.secrets import hash_password, new_ci_token
from chalicelib.naming import check_name
from chalicelib.storage.accounts import ANONYMOUS, AccountStore, TokenRecord


def register(subparsers: Any) -> None:
    user = subparsers.add_parser("user", help="add, remove and list users; grant and revoke access")
    users = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = users.add_parser("add", help="add a user (password from a prompt, or stdin with --password-stdin)")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("--grant", action="append", default=[], metavar="PATTERN=ACTIONS",
                     help="e.g. 'team/*=pull,push' (repeatable)")
    add.set_defaults(run=add_user)
    passwd = users.add_parser("passwd", help="set a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(run=set_password)
    remove = users.add_parser("remove", help="remove a user and their CI tokens")
    remove.add_argument("name")
    remove.set_defaults(run=remove_user)
    listing = users.add_parser("list", help="list users and their grants")
    listing.set_defaults(run=list_users)
    grant = users.add_parser("grant", help=f"grant actions on repositories matching a pattern ('{ANONYMOUS}' "
                                           "grants to callers without credentials)")
    grant.add_argument("name")
    grant.add_argument("pattern", help="repository pattern: 'team/app', 'team/*', '*' ('*' and '?' are the "
                                       "only wildcards)")
    grant.add_argument("actions", help="comma-separated: pull, push, delete, or *")
    grant.set_defaults(run=grant_access)
    revoke = users.add_parser("revoke", help="remove a grant")
    revoke.add_argument("name")
    revoke.add_argument("pattern")
    revoke.set_defaults(run=revoke_access)

    token = subparsers.add_parser("token", help="CI tokens: random secrets usable as a user's password")
    tokens = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = tokens.add_parser("create", help="create a token for a user; it is printed once")
    create.add_argument("user")
    create.add_argument("--expires-in-days", type=float, help="default: never")
    create.add_argument("--description", default="")
    create.set_defaults(run=create_token)
    drop = tokens.add_parser("revoke", help="revoke a token by its id")
    drop.add_argument("user")
    drop.add_argument("id")
    drop.set_defaults(run=revoke_token)
    shown = tokens.add_parser("list", help="list a user's tokens (ids, never secrets)")
    shown.add_argument("user")
    shown.set_defaults(run=list_tokens)

    for parser in (add, passwd, remove, listing, grant, revoke, create, drop, shown):
        target.add_arguments(parser)


def _accounts(args: argparse.Namespace) -> AccountStore:
    return target.registry(args).accounts


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("berth: the passwords differ")
    if not password:
        raise SystemExit("berth: empty password")
    return password


def _fail(message: str) -> int:
    print(f"berth: {message}", file=sys.stderr)
    return 1


def _user_name(name: str) -> str:
    # User names follow repository-name rules: lowercase, no spaces, no ':' (Basic auth's separator).
    check_name(name)
    return name


def add_user(args: argparse.Namespace) -> int:
    name = _user_name(args.name)
    if name == ANONYMOUS:
        return _fail(f"'{ANONYMOUS}' is not a user; grant to it directly")
    if KeylessLogin.handles(name):
        return _fail(f"'{name}' is the user name of keyless logins; see `berth trust`")
    try:
        grants = [parse_grant(text) for text in args.grant]
    except ValueError as error:
        return _fail(str(error))
    accounts = _accounts(args)
    if not accounts.add_user(name, hash_password(_read_password(args))):
        return _fail(f"user {name} exists")
    for grant in grants:
        accounts.grant(name, grant.pattern, grant.actions)
    print(f"added {name}")
    return 0


def set_password(args: argparse.Namespace) -> int:
    if not _accounts(args).set_password(args.name, hash_password(_read_password(args))):
        return _fail(f"no user {args.name}")
    print(f"password of {args.name} changed")
    return 0


def remove_user(args: argparse.Namespace) -> int:
    if not _accounts(args).remove_user(args.name):
        return _fail(f"no user {args.name}")
    print(f"removed {args.name}")
    return 0


def list_users(args: argparse.Namespace) -> int:
    for user in _accounts(args).list_users():
        grants = describe(user.grants) or "(no grants)"
        print(f"{user.name}\t{grants}")
    return 0


def grant_access(args: argparse.Namespace) -> int:
    try:
        actions = normalise_actions(args.actions.split(","))
        check_pattern(args.pattern)
    except ValueError as error:
        return _fail(str(error))
    accounts = _accounts(args)
    if args.name == ANONYMOUS:
        accounts.add_user(ANONYMOUS, None)  # exists already, or now: it has no password
    if not accounts.grant(args.name, args.pattern, actions):
        return _fail(f"no user {args.name}")
    print(f"{args.name} may {','.join(sorted(actions))} on {args.pattern}")
    return 0


def revoke_access(args: argparse.Namespace) -> int:
    if not _accounts(args).revoke(args.name, args.pattern):
        return _fail(f"{args.name} has no grant on {args.pattern}")
    print(f"revoked {args.pattern} from {args.name}")
    return 0


def create_token(args: argparse.Namespace) -> int:
    accounts = _accounts(args)
    if accounts.get_user(args.user) is None or args.user == ANONYMOUS:
        return _fail(f"no user {args.user}")
    secret = new_ci_token()
    now = int(time.time())
    expires = now + int(args.expires_in_days * 86400) if args.expires_in_days else None
    accounts.add_token(TokenRecord(args.user, secret.id, secret.secret_hash, expires, args.description, now))
    print(f"id {secret.id}; use as {args.user}'s password (shown once):", file=sys.stderr)
    print(secret)
    return 0


def revoke_token(args: argparse.Namespace) -> int:
    if not _accounts(args).remove_token(args.user, args.id):
        return _fail(f"{args.user} has no token {args.id}")
    print(f"revoked token {args.id}")
    return 0


def list_tokens(args: argparse.Namespace) -> int:
    for record in _accounts(args).list_tokens(args.user):
        expires = time.strftime("%Y-%m-%d", time.gmtime(record.expires)) if record.expires else "never"
        created = time.strftime("%Y-%m-%d", time.gmtime(record.created))
        print(f"{record.id}\tcreated {created}\texpires {expires}\t{record.description}")
    return 0
