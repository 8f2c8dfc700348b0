"""`berth` admin commands told of a registry they cannot reach say what is wrong and what to
type, never a traceback: a local state file a killed `make run` left, no registry named, no
AWS region."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from berth.target import local_state_path
from tests.local import free_port

REPO = Path(__file__).resolve().parents[2]


def berth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BERTH_"))}
    return subprocess.run([sys.executable, "-m", "berth.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**clean, "AWS_CONFIG_FILE": os.devnull, **(env or {})})


def test_a_state_file_left_by_a_killed_local_mode_is_named_and_removed() -> None:
    port, gone = free_port(), free_port()
    state = local_state_path(port)
    try:
        for command in ("stats", "gc", "fsck"):
            state.write_text(json.dumps({"endpoint": f"http://127.0.0.1:{gone}", "bucket": "b", "table": "t"}))
            result = berth(command, "--local", str(port))
            assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
            assert f"the local registry on port {port} is not running any more" in result.stderr
            assert f"start it with `PORT={port} make run`" in result.stderr
            assert not state.exists()
        result = berth("stats", "--local", str(port))
        assert result.returncode == 1
        assert result.stderr.strip() == \
            f"berth: no local registry on port {port} (start it with `PORT={port} make run`)"
    finally:
        state.unlink(missing_ok=True)


def test_no_registry_named_says_how_to_name_one() -> None:
    for command in ("gc", "stats", "fsck"):
        result = berth(command)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "--local [PORT] for the one `make run` serves, or --table T --bucket B --region R" in result.stderr


def test_no_region_says_how_to_give_one() -> None:
    credentials = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    result = berth("stats", "--table", "t", "--bucket", "b", env=credentials)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == "berth: no AWS region: add --region R (or set AWS_REGION)"
