"""Rendering command results: a table for people, JSON or YAML for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from caxton_cli.errors import CommandError

FORMATS = ("table", "json", "yaml")
__all__ = ["FORMATS", "CommandError", "emit", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells]
    return "\n".join(lines)


def emit(data: Any, fmt: str, *, headers: Sequence[str] = (), rows: Sequence[Sequence[Any]] = (),
         text: str | None = None, empty: str | None = None) -> None:
    """Prints `data` as JSON/YAML, or the table (or free text) for the default format. A
    table without rows prints `empty` on stderr instead, if given (as kubectl says "No
    resources found")."""
    if fmt == "json":
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif fmt == "yaml":
        import yaml

        yaml.safe_dump(data, sys.stdout, sort_keys=False)
    elif text is not None:
        print(text)
    elif not rows and empty is not None:
        print(empty, file=sys.stderr)
    else:
        print(table(headers, rows))


@dataclass
class View:
    """One answer, ready to print: the data for -o json|yaml, a table or text for people."""

    data: Any
    headers: Sequence[str] = ()
    rows: Sequence[Sequence[Any]] = field(default_factory=list)
    text: str | None = None
    changes: Any = None  # what --watch compares to decide the answer changed (default: all of it)

    def watch_key(self, fmt: str) -> Any:
        if self.changes is not None:
            return self.changes
        return self.data if fmt in ("json", "yaml") else (list(self.headers), [list(r) for r in self.rows], self.text)

    def emit(self, fmt: str) -> None:
        emit(self.data, fmt, headers=self.headers, rows=self.rows, text=self.text)
