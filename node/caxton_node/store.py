"""The node's durable state in SQLite (WAL) in its data directory.

Agents and their modules are written synchronously (rare, and a deploy must not
be acknowledged before it is durable). Message traffic is written behind: queued
messages, deliveries, dead letters and the conversation log are batched by a
journal thread and committed every few milliseconds, so the hot path never waits
on disk. A message accepted and delivered within one batch costs no write at all.
What the journal has not committed when the process is killed is lost; a
graceful stop flushes it (delivery is at-most-once by default, docs/delivery.md).
At-most-once holds across a crash because a worker `claim`s its batch before
the agent sees it: a claimed message that was already committed is deleted
durably first, so it cannot come back after a kill -9.

Everything that grows with traffic is bounded: dead letters per agent (count,
rate and age), conversations (by count), and modules on disk (only deployed ones).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caxton_node.messages import Message
from caxton_node.ratelimit import TokenBucket

log = logging.getLogger("caxton.store")

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
    ts_ms INTEGER NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    at_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS conversations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_id ON conversations (conversation_id);
"""
# After the columns a data directory from an earlier version lacks have been added.
INDEXES = """
CREATE INDEX IF NOT EXISTS dead_letters_owner ON dead_letters (owner, seq);
CREATE INDEX IF NOT EXISTS dead_letters_at ON dead_letters (at_ms);
"""

FLUSH_INTERVAL = 0.01
CONVERSATION_RETENTION = 200_000  # rows kept for `trace`; older ones are pruned
DEAD_LETTERS_PER_AGENT = 1000
DEAD_LETTER_MAX_AGE = 7 * 86400.0
AGE_PRUNE_INTERVAL = 60.0


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
    def __init__(self, data_dir: Path, *, dead_letters_per_agent: int = DEAD_LETTERS_PER_AGENT,
                 dead_letter_max_age: float = DEAD_LETTER_MAX_AGE,
                 on_discarded: Callable[[str, int], None] | None = None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.modules_dir = data_dir / "modules"
        self.modules_dir.mkdir(exist_ok=True)
        self.path = data_dir / "caxton.db"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._migrate()
        self._db.executescript(INDEXES)
        self._db_lock = threading.Lock()
        # Dead letters: at most `dead_letters_per_agent` rows per agent, none older than the max
        # age. A flood of sends is cut at the source too: what an agent sends may be recorded in a
        # burst of that many and then that many per minute; the rest is counted (`on_discarded`).
        self.dead_letters_per_agent = dead_letters_per_agent
        self.dead_letter_max_age = dead_letter_max_age
        self._on_discarded = on_discarded or (lambda _why, _n: None)
        self._dead_rates: dict[str, TokenBucket] = {}
        self._age_pruned_at = 0.0
        # Journal state: pending writes, guarded by _pending_lock.
        self._pending_lock = threading.Lock()
        self._enqueued: dict[str, tuple[str, str]] = {}
        self._delivered: list[str] = []
        self._dead: list[tuple[str, str, str, int, str, int]] = []
        self._conversation: list[tuple[str, str]] = []
        # One flush at a time, from swapping the pending writes out to the commit, so batches
        # reach the database in the order they were taken (an insert never follows its delete).
        self._flush_lock = threading.Lock()
        self._seq = self._max_queue_seq()
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._journal = threading.Thread(target=self._run_journal, name="store-journal", daemon=True)
        self._journal.start()

    def _migrate(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(dead_letters)")}
        for column in ("owner TEXT NOT NULL DEFAULT ''", "at_ms INTEGER NOT NULL DEFAULT 0"):
            if column.split()[0] not in columns:
                self._db.execute(f"ALTER TABLE dead_letters ADD COLUMN {column}")
        # Rows written before the column existed have no time of their own: their age counts from
        # now, so an upgrade never prunes the dead letters it finds as if they were ancient.
        self._db.execute("UPDATE dead_letters SET at_ms = ? WHERE at_ms = 0", (int(time.time() * 1000),))

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

    def prune_modules(self, keep: Iterable[str]) -> int:
        """Deletes stored modules no deployed agent uses; returns how many went."""
        wanted = {f"{sha}.wasm" for sha in keep}
        removed = 0
        for path in self.modules_dir.iterdir():
            if path.name not in wanted:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

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

    def claim(self, msg_ids: list[str]) -> None:
        """At-most-once: makes "handled" durable for these messages before an agent sees them.
        Messages still in the journal's pending batch are simply never written; if any was
        already committed (or is being committed), its deletion is committed before returning."""
        committed = False
        with self._pending_lock:
            for msg_id in msg_ids:
                if self._enqueued.pop(msg_id, None) is None:
                    self._delivered.append(msg_id)
                    committed = True
        if committed:
            self.flush()

    def dead_letter(self, msg: Message, reason: str, owner: str, *, rate_limited: bool = False) -> None:
        """Records `msg` as undeliverable, charged to `owner` (the local agent it concerns).
        `rate_limited` for what an agent sends: one message in may make it send any number."""
        with self._pending_lock:
            self._enqueued.pop(msg.id, None)
            self._delivered.append(msg.id)
            if rate_limited and not self._within_rate(owner):
                self._on_discarded("rate", 1)
                return
            self._dead.append((msg.id, reason, msg.encode().decode(), msg.ts_ms, owner,
                               int(time.time() * 1000)))

    def _within_rate(self, owner: str) -> bool:
        bucket = self._dead_rates.get(owner)
        if bucket is None:
            limit = self.dead_letters_per_agent
            bucket = self._dead_rates[owner] = TokenBucket(limit / 60.0, limit)
            if len(self._dead_rates) > 10_000:  # owners from clients and peers come and go
                self._dead_rates.pop(next(iter(self._dead_rates)))
        return bucket.take()

    def conversation(self, msg: Message) -> None:
        with self._pending_lock:
            self._conversation.append((msg.conversation_id, msg.encode().decode()))

    def _run_journal(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            self.flush()
        self.flush()

    def flush(self) -> None:
        with self._flush_lock:
            self._flush()
        with self._flushed:
            self._flushed.notify_all()

    def _flush(self) -> None:
        with self._pending_lock:
            enqueued, self._enqueued = self._enqueued, {}
            delivered, self._delivered = self._delivered, []
            dead, self._dead = self._dead, []
            conversation, self._conversation = self._conversation, []
        now = time.monotonic()
        prune_by_age = now - self._age_pruned_at >= min(AGE_PRUNE_INTERVAL, self.dead_letter_max_age / 2)
        if not (enqueued or delivered or dead or conversation or prune_by_age):
            return
        rows = []
        for msg_id, (receiver, body) in enqueued.items():
            self._seq += 1
            rows.append((msg_id, receiver, body, self._seq))
        discarded = {"count": 0, "age": 0}
        with self._db_lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO queue VALUES (?, ?, ?, ?)", rows)
            self._db.executemany("DELETE FROM queue WHERE msg_id = ?", [(m,) for m in delivered])
            self._db.executemany(
                "INSERT INTO dead_letters (msg_id, reason, body, ts_ms, owner, at_ms) VALUES (?, ?, ?, ?, ?, ?)", dead
            )
            for owner in {row[4] for row in dead}:
                discarded["count"] += self._db.execute(
                    "DELETE FROM dead_letters WHERE owner = ? AND seq <= (SELECT seq FROM dead_letters "
                    "WHERE owner = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (owner, owner, self.dead_letters_per_agent),
                ).rowcount
            if prune_by_age:
                self._age_pruned_at = now
                cutoff = int((time.time() - self.dead_letter_max_age) * 1000)
                discarded["age"] = self._db.execute("DELETE FROM dead_letters WHERE at_ms < ?", (cutoff,)).rowcount
            self._db.executemany("INSERT INTO conversations (conversation_id, body) VALUES (?, ?)", conversation)
            if conversation:
                self._db.execute(
                    "DELETE FROM conversations WHERE seq <= (SELECT MAX(seq) FROM conversations) - ?",
                    (CONVERSATION_RETENTION,),
                )
            self._db.execute("COMMIT")
        for why, n in discarded.items():
            if n > 0:
                self._on_discarded(why, n)

    def requeue(self, queues: dict[str, list[Message]]) -> None:
        """Makes each agent's durable queue exactly `queues[agent]`, in order (graceful stop:
        messages claimed but not handled, when a batch was cut short, are kept again)."""
        with self._flush_lock:
            self._flush()
            with self._db_lock:
                self._db.execute("BEGIN")
                for receiver, messages in queues.items():
                    self._db.execute("DELETE FROM queue WHERE receiver = ?", (receiver,))
                    rows = []
                    for msg in messages:
                        self._seq += 1
                        rows.append((msg.id, receiver, msg.encode().decode(), self._seq))
                    self._db.executemany("INSERT OR REPLACE INTO queue VALUES (?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")

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
                "SELECT msg_id, reason, body, ts_ms, owner FROM dead_letters ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        return [{"id": r[0], "reason": r[1], "message": json.loads(r[2]), "ts_ms": r[3], "agent": r[4]}
                for r in rows]

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

    def checkpoint(self) -> int:
        """Folds the WAL into the database and truncates it (`memory gc`); returns the bytes it shrank."""
        self.flush()
        wal = self.path.with_name(self.path.name + "-wal")
        before = wal.stat().st_size if wal.exists() else 0
        with self._db_lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return before - (wal.stat().st_size if wal.exists() else 0)

    def close(self) -> None:
        self._stop.set()
        self._journal.join(timeout=5)
        with self._db_lock:
            self._db.close()
