"""Local message routing: bounded per-agent queues and one dispatcher thread.

Every message an agent receives goes through its own bounded queue: a full
queue pushes back on the sender (the API answers 429) instead of growing
memory. One dispatcher thread runs agents in turn, a batch at a time, so
messages to an agent, and so every conversation with it, are handled in order.
Messages for names that are not local agents go to mailboxes (clients that
sent something and wait for replies), to a remote forwarder (clustering), or
to the dead-letter queue with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wasmtime

from caxton_node.agents.wasm import AgentError, AgentInstance, describe_trap
from caxton_node.messages import Message, MessageError, decode_message
from caxton_node.metrics import NodeMetrics
from caxton_node.routing.mailboxes import Mailboxes
from caxton_node.store import Store

log = logging.getLogger("caxton.router")

BATCH = 64
LATENCY_WINDOW = 1024


class QueueFull(RuntimeError):
    """The receiver's queue is at capacity; the sender should retry later."""


class UnknownReceiver(LookupError):
    pass


@dataclass
class AgentSlot:
    """A deployed agent as the router sees it."""

    id: str
    instance: AgentInstance | None
    capacity: int
    priority: str = "normal"
    suspended: bool = False
    queue: deque[tuple[Message, float]] = field(default_factory=deque)
    handled: int = 0
    failures: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    restart: Callable[[], AgentInstance] | None = None

    def latency_summary(self) -> tuple[float, float]:
        """(average, p99) handler time in seconds over the recent window."""
        if not self.latencies:
            return 0.0, 0.0
        ordered = sorted(self.latencies)
        return sum(ordered) / len(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class Router:
    def __init__(self, store: Store, metrics: NodeMetrics, *, max_message_bytes: int) -> None:
        self.store = store
        self.metrics = metrics
        self.max_message_bytes = max_message_bytes
        self.agents: dict[str, AgentSlot] = {}
        self.mailboxes = Mailboxes(on_expired=lambda msg: self._dead(msg, "mailbox_expired"))
        self.remote: Callable[[Message], bool] | None = None  # set by clustering
        # Restored from the journal for receivers on other nodes; the forwarder sends them on.
        self.parked: deque[tuple[Message, float]] = deque()
        self.circuit_open = False
        self._ready: deque[AgentSlot] = deque()
        self._scheduled: set[str] = set()
        self._cond = threading.Condition()
        self._running = True
        self._handling: Message | None = None
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._thread = threading.Thread(target=self._dispatch, name="dispatcher", daemon=True)
        self._thread.start()

    # -- accepting messages -------------------------------------------------------

    def route(self, msg: Message, *, from_agent: bool = False, accepted_at: float | None = None) -> str:
        """Routes one message; returns where it went ("local", "mailbox", "remote")."""
        accepted = accepted_at if accepted_at is not None else time.perf_counter()
        slot = self.agents.get(msg.receiver)
        if slot is not None:
            if len(slot.queue) >= slot.capacity:
                if from_agent:
                    self._dead(msg, "queue_full")
                raise QueueFull(f"queue of agent {slot.id} is full ({slot.capacity} messages)")
            slot.queue.append((msg, accepted))
            self.store.enqueued(msg)
            self.store.conversation(msg)
            self.metrics.routed_local.inc()
            self._schedule(slot)
            return "local"
        if self.mailboxes.deliver(msg):
            self.store.conversation(msg)
            self.metrics.routed_mailbox.inc()
            return "mailbox"
        if self.remote is not None and self.remote(msg):
            self.store.conversation(msg)
            self.metrics.routed_remote.inc()
            return "remote"
        if from_agent:
            self._dead(msg, "unknown_receiver")
        raise UnknownReceiver(f"no agent or mailbox named {msg.receiver!r}")

    def open_mailbox(self, name: str) -> None:
        if name not in self.agents:
            self.mailboxes.open(name)

    def take_mailbox(self, name: str, limit: int, timeout: float = 0.0) -> list[Message]:
        """Up to `limit` messages for client `name`, waiting up to `timeout` for the first."""
        return self.mailboxes.take(name, limit, timeout)

    def _dead(self, msg: Message, reason: str) -> None:
        self.store.dead_letter(msg, reason)
        # The label is the reason's category ("agent_failed"), never its free text.
        self.metrics.dead_letters.labels(reason.split(":", 1)[0]).inc()

    def _schedule(self, slot: AgentSlot) -> None:
        with self._cond:
            if slot.id not in self._scheduled and not slot.suspended:
                self._scheduled.add(slot.id)
                self._ready.append(slot)
                self._cond.notify()

    # -- agents -------------------------------------------------------------------------

    def add(self, slot: AgentSlot) -> None:
        self.mailboxes.discard(slot.id)
        self.agents[slot.id] = slot
        if slot.queue:
            self._schedule(slot)

    def remove(self, agent_id: str) -> AgentSlot | None:
        with self._cond:
            slot = self.agents.pop(agent_id, None)
            if slot is not None:
                slot.suspended = True
        return slot

    def set_suspended(self, agent_id: str, suspended: bool) -> None:
        slot = self.agents[agent_id]
        slot.suspended = suspended
        if not suspended and slot.queue:
            self._schedule(slot)

    def set_circuit(self, open_: bool) -> None:
        self.circuit_open = open_
        if not open_:
            for slot in list(self.agents.values()):
                if slot.queue:
                    self._schedule(slot)

    def queue_depth(self) -> int:
        return sum(len(s.queue) for s in list(self.agents.values()))

    def latency_p99(self) -> float:
        if not self._latencies:
            return 0.0
        ordered = sorted(self._latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    # -- host calls from the agent being run ----------------------------------------

    def send_from_agent(self, agent_id: str, raw: bytes) -> int:
        """The `send_message` import: 0 delivered, <0 refused (see docs/agent-abi.md)."""
        try:
            msg = decode_message(raw, max_bytes=self.max_message_bytes, sender=agent_id, defaults=self._handling)
        except MessageError as err:
            log.info("agent %s sent an invalid message: %s", agent_id, err)
            return -2
        try:
            self.route(msg, from_agent=True)
        except (QueueFull, UnknownReceiver):
            return -3
        return 0

    # -- dispatching ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while self._running and (not self._ready or self.circuit_open):
                    self._cond.wait(0.5)
                if not self._running:
                    return
                slot = self._ready.popleft()
                self._scheduled.discard(slot.id)
            self._run_batch(slot)
            if slot.queue and not slot.suspended and slot.id in self.agents:
                self._schedule(slot)

    def _run_batch(self, slot: AgentSlot) -> None:
        metrics = self.metrics
        observe = metrics.message_latency.observe
        for _ in range(BATCH):
            if slot.suspended or self.circuit_open or not slot.queue:
                return
            msg, accepted = slot.queue.popleft()
            instance = slot.instance
            if instance is None:
                self._dead(msg, "agent_unavailable")
                continue
            self._handling = msg
            started = time.perf_counter()
            try:
                instance.handle(msg.encode())
            except (wasmtime.Trap, wasmtime.WasmtimeError, AgentError) as err:
                self._crashed(slot, msg, err)
            finally:
                self._handling = None
            done = time.perf_counter()
            slot.handled += 1
            slot.latencies.append(done - started)
            self._latencies.append(done - accepted)
            observe(done - accepted)
            self.store.delivered(msg.id)

    def _crashed(self, slot: AgentSlot, msg: Message, err: Exception) -> None:
        reason = describe_trap(err) if isinstance(err, wasmtime.Trap | wasmtime.WasmtimeError) else str(err)
        kind = "deadline" if "deadline" in reason else "fuel" if "fuel" in reason else "fault"
        slot.failures += 1
        self.metrics.crashes.labels(kind).inc()
        log.warning("agent %s failed on message %s: %s", slot.id, msg.id, reason)
        self._dead(msg, f"agent_failed: {reason}")
        # A trapped instance may be mid-update; start a fresh one from the same module.
        if slot.restart is not None:
            old, slot.instance = slot.instance, None
            if old is not None:
                old.close()
            try:
                slot.instance = slot.restart()
            except AgentError as restart_err:
                log.error("agent %s could not be restarted: %s", slot.id, restart_err)

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def stats(self) -> dict[str, Any]:
        return {
            "depth": self.queue_depth(),
            "agents": {s.id: len(s.queue) for s in list(self.agents.values())},
            "mailboxes": self.mailboxes.sizes(),
            "longPolls": self.mailboxes.long_polls,
            "dead_letters": self.store.dead_letter_count(),
            "circuit_open": self.circuit_open,
        }
