"""Durations and sizes as the runbook writes them (`200ms`, `1h30m`, `16Mi`): plain
functions without dependencies, so the CLI can read `--timeout 60s` without loading
the configuration model."""

from __future__ import annotations

import re
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SIZE = re.compile(r"^\s*(\d+)\s*(Ki|Mi|Gi|K|M|G|B)?\s*$")


def parse_duration(value: Any) -> float:
    """'200ms' -> 0.2; plain numbers are seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    text = str(value).strip()
    match = _DURATION.match(text)
    if match:
        return float(match.group(1)) * units[match.group(2) or "s"]
    parts = _DURATION_PART.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:  # compound, as Go writes them: 1h30m
        return sum(float(n) * units[u] for n, u in parts)
    raise ValueError(f"not a duration: {value!r} (use e.g. 200ms, 1s, 5m, 1h30m)")


def parse_size(value: Any) -> int:
    """'16Mi' -> 16777216; plain numbers are bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"not a size: {value!r} (use e.g. 16Mi, 1Gi, 65536)")
    factor = {"B": 1, "K": 1000, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(match.group(1)) * factor[match.group(2) or "B"]
