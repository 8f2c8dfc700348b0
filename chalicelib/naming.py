"""Repository names and tags, checked against the spec's grammar. Pure logic."""

from __future__ import annotations

import re

from chalicelib.errors import Oci, RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")
MAX_TAG_LENGTH = 128
_TAG = re.compile(rf"^[a-zA-Z0-9_][a-zA-Z0-9._-]{{0,{MAX_TAG_LENGTH - 1}}}\Z")
MAX_NAME_LENGTH = 255


def valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _NAME.match(name) is not None


def check_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH:
        raise RegistryError(
            Oci.NAME_INVALID,
            f"repository name is longer than {MAX_NAME_LENGTH} characters",
            detail={"name": name[:300]},
        )
    if not _NAME.match(name):
        raise RegistryError(
            Oci.NAME_INVALID,
            "repository name must be lowercase path components of [a-z0-9] joined by '.', '_', '__' or '-'",
            detail={"name": name},
        )
    return name


def valid_tag(tag: str) -> bool:
    return bool(_TAG.match(tag))


def check_tag(tag: str) -> str:
    """For a push: the spec has no tag error code, so a bad tag makes the manifest invalid."""
    if not valid_tag(tag):
        raise RegistryError(
            Oci.MANIFEST_INVALID,
            "tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}",
            detail={"tag": tag[:200]},
        )
    return tag
