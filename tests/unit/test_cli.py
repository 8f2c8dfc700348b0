import subprocess
import sys

from berth.cli import build_parser


def test_every_command_module_registers_itself() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "serve" in commands


def test_berth_serve_passes_its_options_to_the_local_mode() -> None:
    result = subprocess.run([sys.executable, "-m", "berth.cli", "serve", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--moto-port" in result.stdout
