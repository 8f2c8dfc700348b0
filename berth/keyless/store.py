"""What `berth login` records: per registry, how the credential helper gets credentials
(`aws`, `oidc`, or a stored user name and CI token) in berth's own file, and the docker
config's `credHelpers` entry that sends docker, podman and BuildKit to the helper.

Both files are rewritten whole through a temporary file and a rename, readable by their
owner only; everything else in docker's config is kept as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chalicelib.auth.iam import normalise_server_id

HELPER = "berth"  # docker runs docker-credential-<this>
METHODS = ("aws", "oidc", "password")


@dataclass(frozen=True)
class Entry:
    method: str  # one of METHODS
    username: str = ""  # password: the user
    secret: str = ""  # password: the password or CI token
    audience: str = ""  # oidc: what to ask the CI for; default the registry's name


def _read(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise SystemExit(f"berth: {path} is not valid JSON; fix or remove it") from None
    return value if isinstance(value, dict) else {}


def _write(path: Path, value: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as stream:
            json.dump(value, stream, indent=2)
            stream.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def store_path() -> Path:
    if os.environ.get("BERTH_CONFIG_DIR"):
        return Path(os.environ["BERTH_CONFIG_DIR"]) / "credentials.json"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "berth" / "credentials.json"


def docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


class Store:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or store_path()

    def _registries(self) -> dict[str, Any]:
        registries = _read(self.path).get("registries", {})
        return registries if isinstance(registries, dict) else {}

    def get(self, registry: str) -> Entry | None:
        raw = self._registries().get(normalise_server_id(registry))
        if not isinstance(raw, dict) or raw.get("method") not in METHODS:
            return None
        return Entry(**{k: str(raw.get(k, "")) for k in ("method", "username", "secret", "audience")})

    def put(self, registry: str, entry: Entry) -> None:
        registries = self._registries()
        registries[normalise_server_id(registry)] = {k: v for k, v in asdict(entry).items() if v}
        _write(self.path, {"registries": registries})

    def remove(self, registry: str) -> bool:
        registries = self._registries()
        if registries.pop(normalise_server_id(registry), None) is None:
            return False
        _write(self.path, {"registries": registries})
        return True

    def names(self) -> dict[str, str]:
        """Registry -> the user name its credentials carry."""
        entries = {name: self.get(name) for name in self._registries()}
        return {name: (e.username if e.method == "password" else e.method) for name, e in entries.items() if e}


def use_helper(registry: str, path: Path | None = None) -> Path:
    """Names the helper for `registry` in docker's config; returns the file written."""
    path = path or docker_config_path()
    config = _read(path)
    helpers = config.get("credHelpers")
    config["credHelpers"] = {**(helpers if isinstance(helpers, dict) else {}), normalise_server_id(registry): HELPER}
    _write(path, config)
    return path
