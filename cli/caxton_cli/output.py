"""Rendering command results: a table for people, JSON or YAML for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import yaml

FORMATS = ("table", "json", "yaml")


class CommandError(RuntimeError):
    """A failure to report as one readable line; `exit_code` is what the process returns."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
    return "\n".join(lines)


def emit(data: Any, fmt: str, *, headers: Sequence[str] = (), rows: Sequence[Sequence[Any]] = (),
         text: str | None = None) -> None:
    """Prints `data` as JSON/YAML, or the table (or free text) for the default format."""
    if fmt == "json":
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif fmt == "yaml":
        yaml.safe_dump(data, sys.stdout, sort_keys=False)
    elif text is not None:
        print(text)
    else:
        print(table(headers, rows))
