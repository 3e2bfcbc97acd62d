"""Where an emergency-stop dump may go: a directory inside the node's dump root.

The API writes files where a caller says, so the caller may only say where inside one
directory (`node.dump_dir`, default `<data_dir>/dumps`): a relative path is taken
under it, an absolute one must lie within it, and `..` or a symlink out of it is
refused. The target is created and proven writable before anything is stopped, so an
unwritable dump fails without suspending a single agent.
"""

from __future__ import annotations

import os
from pathlib import Path


class DumpForbidden(ValueError):
    """The path lies outside the dump root."""


def dump_target(root: Path, requested: str) -> Path:
    root = root.resolve()
    candidate = Path(requested)
    if ".." in candidate.parts:
        raise DumpForbidden(f"dump_to {requested!r} may not contain '..': name a directory inside the dump root {root}")
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved = candidate.resolve()
    if root not in resolved.parents:
        raise DumpForbidden(f"dump_to {requested!r} is outside the dump root {root} (node.dump_dir): "
                            "name a directory inside it")
    return resolved


def prepare(target: Path) -> None:
    """Creates `target` and writes a probe file in it; raises OSError if it cannot."""
    target.mkdir(parents=True, exist_ok=True)
    probe = target / f".caxton-write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
