"""Entry point of the `caxton-operator` command."""

from __future__ import annotations

import sys


def main() -> None:
    print("caxton-operator: not implemented yet (issue: Operator)", file=sys.stderr)
    sys.exit(2)
