"""Manifests: media types, parsing and validation."""
