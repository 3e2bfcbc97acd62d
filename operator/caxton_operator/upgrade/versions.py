"""Semantic versions as the upgrade rules need them: order, with pre-releases before releases."""

from __future__ import annotations

import re

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


def version_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
    """A sort key: 1.3.0-rc.1 < 1.3.0 < 1.3.1 (semver precedence, numeric identifiers as numbers)."""
    match = _SEMVER.match(version.strip())
    if match is None:
        raise ValueError(f"{version!r} is not a semantic version such as 1.2.0")
    major, minor, patch, pre = match.groups()
    if pre is None:
        return int(major), int(minor), int(patch), 1, ()
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return int(major), int(minor), int(patch), 0, parts


def normalize(version: str) -> str:
    return version.strip().removeprefix("v")


def is_downgrade(current: str, target: str) -> bool:
    return version_key(target) < version_key(current)
