"""`cluster verify --deep`: is this node's durable state sound?

SQLite's own integrity check runs on a fresh read-only connection, so it reads the
file as it is on disk (the node's open connection may hold good pages in its
cache), and every deployed agent's module file must still hash to the sha256 it
was deployed with. Each problem names the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caxton_node.node import Node

MAX_ROWS = 20  # integrity_check stops after this many problems


def check(node: Node) -> dict[str, Any]:
    problems = []
    try:
        conn = sqlite3.connect(f"file:{node.store.path}?mode=ro", uri=True, timeout=5)
        try:
            rows = [r[0] for r in conn.execute(f"PRAGMA integrity_check({MAX_ROWS})").fetchall()]
        finally:
            conn.close()
        if rows != ["ok"]:
            problems.append(f"{node.store.path.name}: SQLite integrity check failed: {'; '.join(rows[:5])}")
    except sqlite3.DatabaseError as err:
        problems.append(f"{node.store.path.name}: SQLite integrity check failed: {err}")
    records = list(node._records.values())  # what the node runs: its database may be the broken part
    for record in records:
        path = node.store.modules_dir / f"{record.sha256}.wasm"
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as err:
            problems.append(f"modules/{path.name} (agent {record.id}): cannot be read: {err.strerror or err}")
            continue
        if actual != record.sha256:
            problems.append(f"modules/{path.name} (agent {record.id}): sha256 {actual}, deployed as {record.sha256}")
    return {"node": node.id, "sound": not problems, "agents": len(records),
            "modules": {r.id: r.sha256 for r in records}, "problems": problems}
