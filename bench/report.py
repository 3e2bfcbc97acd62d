"""Printing benchmark figures against their targets, and writing them as JSON."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

Targets = dict[str, tuple[str, float]]


def meets(value: float, op: str, target: float) -> bool:
    return value <= target if op == "<=" else value >= target


def shown(value: float) -> str:
    """One decimal, except for small values (ratios like 0.004), which keep three significant digits."""
    return f"{value:,.1f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"


def report(figures: dict[str, float], targets: Targets, json_path: Path | None = None, *,
           settings: list[str] | None = None) -> None:
    """Prints the table, then the settings the comparisons hold equal (also written to the JSON)."""
    rows = []
    for name, value in figures.items():
        if name in targets:
            op, target = targets[name]
            rows.append((name, shown(value), f"{op} {target:,.0f}", "yes" if meets(value, op, target) else "NO"))
        else:
            rows.append((name, shown(value), "", ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'FIGURE':{width}}  {'VALUE':>14}  {'TARGET':>12}  MET")
    for name, text, target_text, met in rows:
        print(f"{name:{width}}  {text:>14}  {target_text:>12}  {met}")
    if settings:
        print("held equal:")
        for line in settings:
            print(f"  - {line}")
    if json_path is not None:
        json_path.write_text(json.dumps({
            "figures": figures,
            "targets": {k: {"op": op, "value": v} for k, (op, v) in targets.items()},
            "settings": settings or [],
            "python": sys.version.split()[0],
            "machine": platform.machine(),
        }, indent=2))
