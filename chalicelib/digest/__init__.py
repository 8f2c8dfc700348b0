"""Digests: parsing, computing, and SHA-256 state that survives between requests."""
