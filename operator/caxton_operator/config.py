"""Small parsing helpers shared by the operator's modules."""

from __future__ import annotations

from caxton_node.config import parse_duration


def parse_hours(duration: str) -> float:
    return parse_duration(duration) / 3600
