"""Local message routing: bounded per-agent queues run by a pool of dispatcher workers.

Every message an agent receives goes through its own bounded queue: a full
queue pushes back on the sender (the API answers 429) instead of growing
memory. Workers take ready agents from one run queue, a batch at a time; an
agent is held by one worker at a time, so messages to an agent, and so every
conversation with it, are handled in the order they were accepted.

Isolation: a worker that has spent more than STALL_AFTER inside one message
(a loop running to its deadline, a WASI sleep) stops counting, and a watchdog
starts another, so one slow agent holds the others up by at most about
STALL_AFTER + WATCHDOG_TICK (docs/agent-abi.md). Wasm releases the GIL, so the
stalled worker really runs beside the rest.

Lifecycle changes are serialized with execution: a worker holds the agent's
`lock` while it runs the instance, and removal, suspension and shutdown take
that lock, so an instance is only closed when no thread is inside it.

Messages for names that are not local agents go to mailboxes (clients that
sent something and wait for replies), to a remote forwarder (clustering), or
to the dead-letter queue with the reason.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wasmtime

from caxton_node.agents.log_limit import LogLimiter
from caxton_node.agents.wasm import AgentError, AgentInstance, describe_trap
from caxton_node.messages import Message, MessageError, decode_message
from caxton_node.metrics import NodeMetrics
from caxton_node.routing.mailboxes import Mailboxes
from caxton_node.store import Store

log = logging.getLogger("caxton.router")

BATCH = 64
LATENCY_WINDOW = 1024
WORKERS = 4  # workers that are not stalled; the pool grows past this only to replace stalled ones
MAX_WORKERS = 64
STALL_AFTER = 0.02  # seconds inside one message after which a worker no longer counts
WATCHDOG_TICK = 0.01
MEMORY_READ_INTERVAL = 0.1  # how stale an agent's reported memory may be (seconds)


class QueueFull(RuntimeError):
    """The receiver's queue is at capacity; the sender should retry later."""


class UnknownReceiver(LookupError):
    pass


@dataclass(eq=False)
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
    memory_bytes: int = 0  # as of a recent message: read without touching the Store another thread runs
    memory_read_at: float = 0.0
    removed: bool = False
    scheduled: bool = False  # in the run queue or held by a worker (changed under Router._cond)
    busy_since: float = 0.0  # perf_counter() when its current message started, 0.0 when idle
    log_limit: LogLimiter | None = None
    # Held by the worker running the instance; lifecycle changes take it to wait for that run to end.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def latency_summary(self) -> tuple[float, float]:
        """(average, p99) handler time in seconds over the recent window."""
        if not self.latencies:
            return 0.0, 0.0
        ordered = sorted(self.latencies)
        return sum(ordered) / len(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class _Worker:
    __slots__ = ("since", "thread")

    def __init__(self) -> None:
        self.since = 0.0  # perf_counter() when the message it runs started, 0.0 between messages
        self.thread: threading.Thread | None = None

    def stalled(self, now: float) -> bool:
        since = self.since
        return since != 0.0 and now - since > STALL_AFTER


class Router:
    def __init__(self, store: Store, metrics: NodeMetrics, *, max_message_bytes: int,
                 at_most_once: bool = True, workers: int = WORKERS) -> None:
        self.store = store
        self.metrics = metrics
        self.max_message_bytes = max_message_bytes
        self.at_most_once = at_most_once
        self.agents: dict[str, AgentSlot] = {}
        self.mailboxes = Mailboxes(on_expired=lambda msg: self._dead(msg, "mailbox_expired"))
        self.remote: Callable[[Message], bool] | None = None  # set by clustering
        # Restored from the journal for receivers on other nodes; the forwarder sends them on.
        self.parked: deque[tuple[Message, float]] = deque()
        self.circuit_open = False
        self._ready: deque[AgentSlot] = deque()
        self._cond = threading.Condition()
        self._running = True
        self._local = threading.local()  # the message each worker is handling (send_message defaults)
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._base_workers = max(1, workers)
        self._workers: list[_Worker] = []  # changed under _cond
        self._worker_names = itertools.count(1)
        # The watchdog keeps the pool staffed; /readyz reports whether it runs.
        self._thread = threading.Thread(target=self._watch, name="dispatcher", daemon=True)
        self._thread.start()

    @property
    def dispatching(self) -> bool:
        """Whether the dispatcher (its watchdog, which keeps the workers staffed) still runs."""
        return self._thread.is_alive()

    # -- accepting messages -------------------------------------------------------

    def route(self, msg: Message, *, from_agent: bool = False, accepted_at: float | None = None) -> str:
        """Routes one message; returns where it went ("local", "mailbox", "remote")."""
        accepted = accepted_at if accepted_at is not None else time.perf_counter()
        slot = self.agents.get(msg.receiver)
        if slot is not None:
            if len(slot.queue) >= slot.capacity:
                if from_agent:
                    self._dead(msg, "queue_full", owner=msg.sender, rate_limited=True)
                raise QueueFull(f"queue of agent {slot.id} is full ({slot.capacity} messages)")
            slot.queue.append((msg, accepted))
            if slot.removed and not self._taken_back(slot, msg):
                return self.route(msg, from_agent=from_agent, accepted_at=accepted)
            self.store.enqueued(msg)
            self.store.conversation(msg)
            self.metrics.routed_local.inc()
            if not slot.scheduled:  # a scheduled agent's worker looks at its queue again before letting go
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
            self._dead(msg, "unknown_receiver", owner=msg.sender, rate_limited=True)
        raise UnknownReceiver(f"no agent or mailbox named {msg.receiver!r}")

    @staticmethod
    def _taken_back(slot: AgentSlot, msg: Message) -> bool:
        """`msg` was queued for an agent being removed at that moment: True if the removal took
        it along (a handoff sends it on); else it is taken out again, to be routed anew."""
        with slot.lock:  # the removal empties the queue under this lock
            try:
                slot.queue.remove(next(item for item in slot.queue if item[0] is msg))
            except StopIteration:
                return True
        return False

    def open_mailbox(self, name: str) -> None:
        if name not in self.agents:
            self.mailboxes.open(name)

    def take_mailbox(self, name: str, limit: int, timeout: float = 0.0) -> list[Message]:
        """Up to `limit` messages for client `name`, waiting up to `timeout` for the first."""
        return self.mailboxes.take(name, limit, timeout)

    def dead_letter(self, msg: Message, reason: str) -> None:
        """Parks a message nothing can take (for callers outside the router, such as a failed handoff)."""
        self._dead(msg, reason)

    def _dead(self, msg: Message, reason: str, *, owner: str = "", rate_limited: bool = False) -> None:
        """Dead-letters `msg`, charged to `owner` (the local agent it concerns) for the per-agent bound."""
        if not owner:
            owner = msg.receiver if msg.receiver in self.agents else msg.sender
        self.store.dead_letter(msg, reason, owner, rate_limited=rate_limited)
        # The label is the reason's category ("agent_failed"), never its free text.
        self.metrics.dead_letters.labels(reason.split(":", 1)[0]).inc()

    def _schedule(self, slot: AgentSlot) -> None:
        with self._cond:
            if not slot.scheduled and not slot.suspended and not slot.removed:
                slot.scheduled = True
                self._ready.append(slot)
                self._cond.notify()

    # -- agents -------------------------------------------------------------------------

    def add(self, slot: AgentSlot) -> None:
        self.mailboxes.discard(slot.id)
        self.agents[slot.id] = slot
        if slot.queue:
            self._schedule(slot)

    def detach(self, agent_id: str) -> AgentSlot | None:
        """Takes the agent out of routing; no worker starts another of its messages."""
        with self._cond:
            slot = self.agents.pop(agent_id, None)
            if slot is not None:
                slot.removed = True
        return slot

    def retire(self, slot: AgentSlot, *, keep_queue: bool = False) -> list[Message]:
        """Waits for the message a detached agent is handling (at most its deadline); from then on
        no worker touches its instance. Its queue is dead-lettered, or with `keep_queue` returned
        (a handoff routes it to the agent's copy on another node)."""
        with slot.lock:
            left = [msg for msg, _ in slot.queue]
            slot.queue.clear()
        if keep_queue:
            return left
        for msg in left:
            self._dead(msg, "agent_removed", owner=slot.id)
        return []

    def set_suspended(self, agent_id: str, suspended: bool, *, wait: bool = True) -> None:
        """Suspends or resumes; a suspension waits (unless `wait` is False) for the message
        being handled, so nothing runs in a suspended agent once this returns."""
        slot = self.agents[agent_id]
        slot.suspended = suspended
        if suspended:
            if wait:
                self.wait_idle(slot)
        elif slot.queue:
            self._schedule(slot)

    @staticmethod
    def wait_idle(slot: AgentSlot) -> None:
        """Returns once no worker runs `slot` (a worker stops between messages when it is suspended)."""
        with slot.lock:
            pass

    def set_circuit(self, open_: bool) -> None:
        self.circuit_open = open_
        if not open_:
            for slot in list(self.agents.values()):
                if slot.queue:
                    self._schedule(slot)
            with self._cond:
                self._cond.notify_all()

    def queue_depth(self) -> int:
        return sum(len(s.queue) for s in list(self.agents.values()))

    def latency_p99(self) -> float:
        if not self._latencies:
            return 0.0
        ordered = sorted(self._latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    # -- host calls from the agent being run ----------------------------------------

    def handling(self) -> Message | None:
        """The message the calling worker thread is handling (None outside a handler)."""
        return getattr(self._local, "handling", None)

    def send_from_agent(self, agent_id: str, raw: bytes) -> int:
        """The `send_message` import: 0 delivered, <0 refused (see docs/agent-abi.md)."""
        handling = getattr(self._local, "handling", None)
        try:
            msg = decode_message(raw, max_bytes=self.max_message_bytes, sender=agent_id, defaults=handling)
        except MessageError as err:
            log.info("agent %s sent an invalid message: %s", agent_id, err)
            return -2
        try:
            self.route(msg, from_agent=True)
        except (QueueFull, UnknownReceiver):
            return -3
        return 0

    # -- dispatching ----------------------------------------------------------------------

    def _spawn(self) -> None:
        """Starts one worker (called under _cond)."""
        worker = _Worker()
        worker.thread = threading.Thread(target=self._work, args=(worker,),
                                         name=f"dispatcher-{next(self._worker_names)}", daemon=True)
        self._workers.append(worker)
        worker.thread.start()

    def _surplus(self, me: _Worker) -> bool:
        """True if the pool keeps its quota of unstalled workers without `me` (called under _cond)."""
        if len(self._workers) <= self._base_workers:
            return False
        now = time.perf_counter()
        others = sum(1 for w in self._workers if w is not me and not w.stalled(now))
        return others >= self._base_workers

    def _watch(self) -> None:
        with self._cond:
            for _ in range(self._base_workers):
                self._spawn()
        while self._running:
            time.sleep(WATCHDOG_TICK)
            with self._cond:
                if not self._running:
                    return
                now = time.perf_counter()
                healthy = sum(1 for w in self._workers if not w.stalled(now))
                while healthy < self._base_workers and len(self._workers) < MAX_WORKERS:
                    self._spawn()
                    healthy += 1

    def _work(self, me: _Worker) -> None:
        cond = self._cond
        while True:
            with cond:
                while self._running and (not self._ready or self.circuit_open):
                    if self._surplus(me):
                        self._workers.remove(me)
                        return
                    cond.wait(0.5)
                if not self._running:
                    self._workers.remove(me)
                    return
                slot = self._ready.popleft()
            try:
                with slot.lock:
                    if not slot.removed:
                        self._run_batch(slot, me)
            except Exception:  # a worker must survive anything an agent does
                log.exception("dispatching to agent %s failed", slot.id)
            me.since = 0.0
            with cond:
                slot.scheduled = False
                if slot.queue and not slot.suspended and not slot.removed:
                    slot.scheduled = True
                    self._ready.append(slot)
                    cond.notify()
                if self._surplus(me):
                    self._workers.remove(me)
                    return

    def _run_batch(self, slot: AgentSlot, me: _Worker) -> None:
        """Runs up to BATCH of `slot`'s messages; the caller holds slot.lock, so only this thread
        takes messages off the queue until it returns."""
        queue = slot.queue
        batch = list(itertools.islice(queue, BATCH))
        if not batch or slot.suspended or self.circuit_open:
            return
        at_most_once = self.at_most_once
        if at_most_once:
            # "Handled" is durable before the agent sees any of them: a crash may lose the batch,
            # it never delivers it twice.
            self.store.claim([msg.id for msg, _ in batch])
        observe = self.metrics.message_latency.observe
        local = self._local
        for msg, accepted in batch:
            if slot.suspended or slot.removed or self.circuit_open or not self._running:
                return
            queue.popleft()
            instance = slot.instance
            if instance is None:
                self._dead(msg, "agent_unavailable", owner=slot.id)
                continue
            local.handling = msg
            started = time.perf_counter()
            me.since = slot.busy_since = started
            try:
                instance.handle(msg.encode())
            except (wasmtime.Trap, wasmtime.WasmtimeError, AgentError) as err:
                self._crashed(slot, msg, err)
            finally:
                local.handling = None
                me.since = slot.busy_since = 0.0
            done = time.perf_counter()
            slot.handled += 1
            slot.latencies.append(done - started)
            self._latencies.append(done - accepted)
            observe(done - accepted)
            if not at_most_once:
                self.store.delivered(msg.id)
        if slot.instance is not None and time.perf_counter() - slot.memory_read_at >= MEMORY_READ_INTERVAL:
            slot.memory_read_at = time.perf_counter()
            slot.memory_bytes = slot.instance.memory_bytes()

    def _crashed(self, slot: AgentSlot, msg: Message, err: Exception) -> None:
        reason = describe_trap(err) if isinstance(err, wasmtime.Trap | wasmtime.WasmtimeError) else str(err)
        kind = "deadline" if "deadline" in reason else "fuel" if "fuel" in reason else "fault"
        slot.failures += 1
        self.metrics.crashes.labels(kind).inc()
        log.warning("agent %s failed on message %s: %s", slot.id, msg.id, reason)
        self._dead(msg, f"agent_failed: {reason}", owner=slot.id)
        # A trapped instance may be mid-update; start a fresh one from the same module.
        if slot.restart is not None and not slot.removed:
            old, slot.instance = slot.instance, None
            if old is not None:
                old.close()
            try:
                slot.instance = slot.restart()
            except AgentError as restart_err:
                log.error("agent %s could not be restarted: %s", slot.id, restart_err)

    def stop(self) -> None:
        """Stops the workers between messages; one inside a message finishes it (its deadline bounds that)."""
        with self._cond:
            self._running = False
            self._cond.notify_all()
            workers = list(self._workers)
        self._thread.join(timeout=5)
        for worker in workers:
            if worker.thread is not None:
                worker.thread.join(timeout=5)

    def worker_counts(self) -> tuple[int, int]:
        """(workers, of which stalled inside a long message)."""
        now = time.perf_counter()
        with self._cond:
            return len(self._workers), sum(1 for w in self._workers if w.stalled(now))

    def stats(self) -> dict[str, Any]:
        workers, stalled = self.worker_counts()
        return {
            "depth": self.queue_depth(),
            "agents": {s.id: len(s.queue) for s in list(self.agents.values())},
            "mailboxes": self.mailboxes.sizes(),
            "longPolls": self.mailboxes.long_polls,
            "dead_letters": self.store.dead_letter_count(),
            "circuit_open": self.circuit_open,
            "workers": {"total": workers, "stalled": stalled},
        }
