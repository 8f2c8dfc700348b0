"""Subcommands of `berth`, one module each (see berth/cli.py)."""
