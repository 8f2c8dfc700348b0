"""`docker-credential-berth`: docker's credential-helper protocol (also spoken by podman,
BuildKit, containerd-based tools and crane) in front of berth's credentials.

`get` reads a registry name on stdin and prints `{"ServerURL", "Username", "Secret"}`, made
at that moment (`berth.keyless.sources`); `store` records what `docker login` was given
(user names `aws` and `oidc` record only the method: their proofs are made fresh each time);
`erase` forgets a registry; `list` prints registry -> user name. Failures go to stdout with
exit status 1, as the protocol has it; "not found" uses the exact text docker recognises.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from berth.keyless import sources
from berth.keyless.store import Entry, Store

NOT_FOUND = "credentials not found in native keychain"
USAGE = "Usage: docker-credential-berth <get|store|erase|list|version>"


class Failure(Exception):
    pass


def _get(store: Store, stdin: TextIO) -> dict[str, str]:
    registry = stdin.read().strip()
    if not registry:
        raise Failure("no server URL given")
    try:
        found = sources.credentials(registry, store.get(registry))
    except sources.NoCredentials as error:
        raise Failure(str(error)) from None
    if found is None:
        raise Failure(NOT_FOUND)
    return {"ServerURL": registry, "Username": found[0], "Secret": found[1]}


def _store(store: Store, stdin: TextIO) -> None:
    try:
        given = json.loads(stdin.read())
        registry, username, secret = given["ServerURL"], given["Username"], given["Secret"]
    except (ValueError, KeyError, TypeError):
        raise Failure("store wants {\"ServerURL\", \"Username\", \"Secret\"} on stdin") from None
    if username in (sources.AWS_USER, sources.OIDC_USER):
        store.put(registry, Entry(username))
    else:
        store.put(registry, Entry("password", username=username, secret=secret))


def run(argv: list[str], stdin: TextIO, stdout: TextIO, store: Store | None = None) -> int:
    store = store or Store()
    action = argv[0] if argv else ""
    try:
        if action == "get":
            json.dump(_get(store, stdin), stdout)
        elif action == "store":
            _store(store, stdin)
        elif action == "erase":
            if not store.remove(stdin.read().strip()):
                raise Failure(NOT_FOUND)
        elif action == "list":
            json.dump(store.names(), stdout)
        elif action == "version":
            stdout.write("docker-credential-berth (berth 0.1.0)")
        else:
            raise Failure(USAGE)
    except Failure as failure:
        stdout.write(f"{failure}\n")
        return 1
    stdout.write("\n")
    return 0


def main() -> int:
    return run(sys.argv[1:], sys.stdin, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
