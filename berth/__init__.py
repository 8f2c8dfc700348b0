"""Berth tooling that runs outside Lambda: the local mode and the `berth` command."""
