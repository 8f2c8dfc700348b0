"""Berth: the registry code that runs inside Lambda."""
