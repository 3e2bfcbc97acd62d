"""A node's consistent online snapshot, served at GET /v1/backup/snapshot as a tar.

The SQLite state is copied with the online backup API after the write-behind
journal is flushed, while deploys and removals wait (the node's lock), so the
agents, their modules and the queue in the tar belong to one instant. Queued
messages include those parked for, or on their way to, another node: all of them
live in the journal's queue table. `agents.json` and `messages.json` are read
from the snapshot itself, for people and for counting; a restore uses the
database and the modules.
"""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from caxton_node.node import Node

DB_NAME = "caxton.db"


def describe_db(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(agents with limits, queued messages in order) as a snapshot holds them."""
    conn = sqlite3.connect(path)
    try:
        agents = [
            {"id": r[0], "sha256": r[1], "limits": json.loads(r[2]), "priority": r[3], "state": r[4]}
            for r in conn.execute("SELECT id, sha256, limits, priority, state FROM agents ORDER BY id")
        ]
        messages = [
            {"id": r[0], "receiver": r[1], "message": json.loads(r[2])}
            for r in conn.execute("SELECT msg_id, receiver, body FROM queue ORDER BY seq")
        ]
    finally:
        conn.close()
    return agents, messages


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def take(node: Node) -> bytes:
    """The tar: caxton.db, agents.json, messages.json, node.json and modules/<sha256>.wasm."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / DB_NAME
        with node._lock:  # no deploy or removal between the database copy and the modules
            node.store.backup(db)
            agents, messages = describe_db(db)
            modules = {a["sha256"]: node.store.load_module(a["sha256"]) for a in agents}
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            _add(tar, DB_NAME, db.read_bytes())
            _add(tar, "agents.json", json.dumps(agents, indent=1).encode())
            _add(tar, "messages.json", json.dumps(messages, indent=1).encode())
            _add(tar, "node.json", json.dumps({
                "node": node.id, "version": node.version, "takenAtMs": int(time.time() * 1000),
                "agents": len(agents), "queuedMessages": len(messages),
            }).encode())
            for sha, wasm in sorted(modules.items()):
                _add(tar, f"modules/{sha}.wasm", wasm)
    return buf.getvalue()


def unpack(data: bytes) -> dict[str, bytes]:
    """The files of a snapshot tar, by name; refuses names that would leave the directory."""
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        for member in tar.getmembers():
            if not member.isfile() or member.name.startswith("/") or ".." in member.name.split("/"):
                raise ValueError(f"snapshot holds an unexpected entry {member.name!r}")
            extracted = tar.extractfile(member)
            assert extracted is not None
            files[member.name] = extracted.read()
    return files
