"""The node's durable state in SQLite (WAL) in its data directory.

Agents and their modules are written synchronously (rare, and a deploy must not
be acknowledged before it is durable). Message traffic is written behind: queued
messages, deliveries, dead letters and the conversation log are batched by a
journal thread and committed every few milliseconds, so the hot path never waits
on disk. A message accepted and delivered within one batch costs no write at all.
What the journal has not committed when the process is killed is lost; a
graceful stop flushes it (delivery is at-most-once by default, docs/delivery.md).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caxton_node.messages import Message

SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    limits TEXT NOT NULL,
    priority TEXT NOT NULL,
    state TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    msg_id TEXT PRIMARY KEY,
    receiver TEXT NOT NULL,
    body TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_seq ON queue (seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    body TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_id ON conversations (conversation_id);
"""

FLUSH_INTERVAL = 0.01
CONVERSATION_RETENTION = 200_000  # rows kept for `trace`; older ones are pruned


@dataclass(frozen=True)
class AgentRecord:
    id: str
    sha256: str
    limits: dict[str, Any]
    priority: str
    state: str
    created_ms: int


def message_from_json(body: str) -> Message:
    data = json.loads(body)
    return Message(
        performative=data["performative"], sender=data["sender"], receiver=data["receiver"],
        conversation_id=data["conversation_id"], content=data.get("content"),
        reply_with=data.get("reply_with", ""), in_reply_to=data.get("in_reply_to", ""),
        id=data["id"], ts_ms=data.get("ts_ms", 0),
    )


class Store:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.modules_dir = data_dir / "modules"
        self.modules_dir.mkdir(exist_ok=True)
        self.path = data_dir / "caxton.db"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db_lock = threading.Lock()
        # Journal state: pending writes, guarded by _pending_lock.
        self._pending_lock = threading.Lock()
        self._enqueued: dict[str, tuple[str, str]] = {}
        self._delivered: list[str] = []
        self._dead: list[tuple[str, str, str, int]] = []
        self._conversation: list[tuple[str, str]] = []
        self._seq = self._max_queue_seq()
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._journal = threading.Thread(target=self._run_journal, name="store-journal", daemon=True)
        self._journal.start()

    def _max_queue_seq(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM queue").fetchone()
        return int(row[0])

    # -- agents and modules (synchronous) ----------------------------------------

    def save_module(self, sha256: str, wasm: bytes) -> None:
        path = self.modules_dir / f"{sha256}.wasm"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(wasm)
            tmp.replace(path)

    def load_module(self, sha256: str) -> bytes:
        return (self.modules_dir / f"{sha256}.wasm").read_bytes()

    def save_agent(self, record: AgentRecord) -> None:
        with self._db_lock:
            self._db.execute(
                "INSERT OR REPLACE INTO agents VALUES (?, ?, ?, ?, ?, ?)",
                (record.id, record.sha256, json.dumps(record.limits), record.priority, record.state,
                 record.created_ms),
            )

    def set_agent_state(self, agent_id: str, state: str) -> None:
        with self._db_lock:
            self._db.execute("UPDATE agents SET state = ? WHERE id = ?", (state, agent_id))

    def delete_agent(self, agent_id: str) -> None:
        self.flush()
        with self._db_lock:
            self._db.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
            self._db.execute("DELETE FROM queue WHERE receiver = ?", (agent_id,))

    def agents(self) -> list[AgentRecord]:
        with self._db_lock:
            rows = self._db.execute("SELECT * FROM agents ORDER BY created_ms, id").fetchall()
        return [AgentRecord(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5]) for r in rows]

    # -- message journal (write-behind) --------------------------------------------

    def enqueued(self, msg: Message) -> None:
        with self._pending_lock:
            self._enqueued[msg.id] = (msg.receiver, msg.encode().decode())

    def delivered(self, msg_id: str) -> None:
        with self._pending_lock:
            if self._enqueued.pop(msg_id, None) is None:
                self._delivered.append(msg_id)

    def dead_letter(self, msg: Message, reason: str) -> None:
        with self._pending_lock:
            self._enqueued.pop(msg.id, None)
            self._delivered.append(msg.id)
            self._dead.append((msg.id, reason, msg.encode().decode(), msg.ts_ms))

    def conversation(self, msg: Message) -> None:
        with self._pending_lock:
            self._conversation.append((msg.conversation_id, msg.encode().decode()))

    def _run_journal(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            self.flush()
        self.flush()

    def flush(self) -> None:
        with self._pending_lock:
            enqueued, self._enqueued = self._enqueued, {}
            delivered, self._delivered = self._delivered, []
            dead, self._dead = self._dead, []
            conversation, self._conversation = self._conversation, []
        if not (enqueued or delivered or dead or conversation):
            with self._flushed:
                self._flushed.notify_all()
            return
        rows = []
        for msg_id, (receiver, body) in enqueued.items():
            self._seq += 1
            rows.append((msg_id, receiver, body, self._seq))
        with self._db_lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO queue VALUES (?, ?, ?, ?)", rows)
            self._db.executemany("DELETE FROM queue WHERE msg_id = ?", [(m,) for m in delivered])
            self._db.executemany(
                "INSERT INTO dead_letters (msg_id, reason, body, ts_ms) VALUES (?, ?, ?, ?)", dead
            )
            self._db.executemany("INSERT INTO conversations (conversation_id, body) VALUES (?, ?)", conversation)
            if conversation:
                self._db.execute(
                    "DELETE FROM conversations WHERE seq <= (SELECT MAX(seq) FROM conversations) - ?",
                    (CONVERSATION_RETENTION,),
                )
            self._db.execute("COMMIT")
        with self._flushed:
            self._flushed.notify_all()

    def queued_messages(self) -> list[Message]:
        """Undelivered messages in the order they were accepted (for restart)."""
        self.flush()
        with self._db_lock:
            rows = self._db.execute("SELECT body FROM queue ORDER BY seq").fetchall()
        return [message_from_json(r[0]) for r in rows]

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        self.flush()
        with self._db_lock:
            rows = self._db.execute(
                "SELECT msg_id, reason, body, ts_ms FROM dead_letters ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [{"id": r[0], "reason": r[1], "message": json.loads(r[2]), "ts_ms": r[3]} for r in rows]

    def dead_letter_count(self) -> int:
        with self._db_lock:
            return int(self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])

    def trace(self, conversation_id: str) -> list[dict[str, Any]]:
        self.flush()
        with self._db_lock:
            rows = self._db.execute(
                "SELECT body FROM conversations WHERE conversation_id = ? ORDER BY seq", (conversation_id,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def backup(self, target: Path) -> None:
        """A consistent snapshot of the database (SQLite online backup)."""
        self.flush()
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._db_lock, sqlite3.connect(target) as dest:
            self._db.backup(dest)

    def close(self) -> None:
        self._stop.set()
        self._journal.join(timeout=5)
        with self._db_lock:
            self._db.close()
