"""A Caxton node: the agents it hosts, its router and its durable state.

This is the object the HTTP API, the CLI's direct mode and the clustering layer
act on. It restores its agents and their undelivered messages from the data
directory when it starts, so a restarted node carries on where it stopped.
"""

from __future__ import annotations

import gc
import json
import logging
import resource
import socket
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from caxton_node import security
from caxton_node.agents.log_limit import LogLimiter
from caxton_node.agents.wasm import AgentError, HostCalls, Limits, WasmEngine
from caxton_node.api.tokens import TokenSet
from caxton_node.config import Config, parse_duration, parse_size
from caxton_node.events import EventLog
from caxton_node.gossip.membership import Membership
from caxton_node.limits import AGENT_ID_PATTERN, check_deadline, check_fuel, check_memory, valid_agent_id
from caxton_node.load import LoadMeter
from caxton_node.messages import Message
from caxton_node.metrics import NodeMetrics
from caxton_node.peers.forwarder import Forwarder
from caxton_node.ramp import AdmissionRamp
from caxton_node.routing.router import AgentSlot, QueueFull, Router, UnknownReceiver
from caxton_node.store import AgentRecord, Store
from caxton_node.system import memory_available_bytes, return_free_memory, rss_bytes

log = logging.getLogger("caxton.node")

PRIORITIES = ("low", "normal", "high")
LOG_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}


class NodeError(RuntimeError):
    """A request the node refuses; `code` and `status` become the API's error."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class Node:
    def __init__(self, config: Config, *, version: str = "dev") -> None:
        self.config = config
        self.id = config.node.id or socket.gethostname()
        self.version = version
        self.started_at = time.time()
        self.metrics = NodeMetrics()
        self.metrics.before_scrape.callback = self.sample_metrics
        for reason in ("deadline", "fuel", "fault"):
            self.metrics.crashes.labels(reason)
        for why in ("rate", "count", "age"):
            self.metrics.dead_letters_discarded.labels(why)
        discarded = self.metrics.dead_letters_discarded
        self.store = Store(config.node.data_dir, dead_letters_per_agent=config.agents.dead_letters_per_agent,
                           dead_letter_max_age=config.agents.dead_letter_max_age,
                           on_discarded=lambda why, n: discarded.labels(why).inc(n))
        self.engine = WasmEngine(config.node.data_dir / "cache",
                                 max_message_bytes=config.agents.max_message_bytes)
        self.router = Router(self.store, self.metrics, max_message_bytes=config.agents.max_message_bytes,
                             at_most_once=config.agents.delivery == "at-most-once")
        self.ramp = AdmissionRamp()  # a gradual circuit-breaker reset (ramp.py)
        self.read_only_reason = ""  # set by partition handling on the minority side
        self.hibernating = False  # the cluster stops as a whole: queues are kept for the restart
        self.membership: Membership | None = None  # set when the node gossips with peers
        self._formed = False  # seen bootstrap_expect members once: from then on membership sets the quorum
        self.forwarder: Forwarder | None = None  # cross-node delivery, with membership
        self.tokens: TokenSet | None = None  # the API tokens accepted (set by the server)
        self.events = EventLog()
        self.events.attach()
        self._lock = threading.Lock()
        self._records: dict[str, AgentRecord] = {}
        self._frozen: dict[str, float] = {}  # agent id -> lease end (monotonic) while it moves away
        self._restore()
        self.load_meter = LoadMeter(lambda: {s.id: s.handled for s in list(self.router.agents.values())})
        self.load_meter.measure()

    # -- limits ---------------------------------------------------------------------------

    def _limits(self, raw: dict[str, Any] | None) -> Limits:
        defaults = self.config.agents
        raw = dict(raw or {})
        unknown = set(raw) - {"memory", "fuel", "deadline"}
        if unknown:
            raise NodeError("invalid_limits", f"unknown limit(s): {', '.join(sorted(unknown))}")
        try:
            memory = parse_size(raw["memory"]) if raw.get("memory") is not None else defaults.memory
            deadline = parse_duration(raw["deadline"]) if raw.get("deadline") is not None else defaults.deadline
            fuel = int(raw["fuel"]) if raw.get("fuel") is not None else defaults.fuel
        except (TypeError, ValueError) as err:
            raise NodeError("invalid_limits", str(err)) from None
        try:
            check_memory(memory)
            check_deadline(deadline)
            check_fuel(fuel)
        except ValueError as err:
            raise NodeError("invalid_limits", str(err)) from None
        return Limits(memory_bytes=memory, deadline_seconds=deadline, fuel=fuel)

    # -- agents -----------------------------------------------------------------------------

    def _slot(self, record: AgentRecord, wasm: bytes) -> AgentSlot:
        _, pre = self.engine.load(wasm)
        limits = Limits(**record.limits)
        agent_id = record.id
        logs = LogLimiter(per_second=self.config.agents.log_lines_per_second,
                          per_message=self.config.agents.log_lines_per_message)
        router, dropped = self.router, self.metrics.log_lines_dropped

        def agent_log(level: int, text: str) -> None:
            if logs.allow(router.handling()):
                log.log(LOG_LEVELS.get(level, logging.INFO), "[agent %s] %s", agent_id, text)
                return
            dropped.inc()
            count = logs.report()
            if count:
                log.warning("[agent %s] %d log line(s) dropped: over %d a message or %g a second", agent_id,
                            count, self.config.agents.log_lines_per_message, self.config.agents.log_lines_per_second)

        host = HostCalls(send=lambda raw: router.send_from_agent(agent_id, raw), log=agent_log)

        def start() -> Any:
            return self.engine.instantiate(pre, limits, host)

        instance = start()
        return AgentSlot(
            id=agent_id, instance=instance, capacity=self.config.agents.queue_capacity,
            priority=record.priority, suspended=record.state == "suspended", restart=start,
            memory_bytes=instance.memory_bytes(), log_limit=logs,
        )

    def deploy(self, agent_id: str, wasm: bytes, *, limits: dict[str, Any] | None = None,
               priority: str = "normal", state: bytes | None = None) -> dict[str, Any]:
        """Deploys an agent; `state` (what its predecessor's snapshot returned, when it moves here)
        is restored into the fresh instance before it takes its first message."""
        self._check_writable()
        if not valid_agent_id(agent_id or ""):
            raise NodeError("invalid_agent_id", f"agent id {agent_id!r} must match {AGENT_ID_PATTERN}")
        if priority not in PRIORITIES:
            raise NodeError("invalid_priority", f"priority must be one of {', '.join(PRIORITIES)}")
        parsed = self._limits(limits)
        with self._lock:
            if agent_id in self._records:
                raise NodeError("agent_exists", f"agent {agent_id} already exists", 409)
            record = AgentRecord(agent_id, "", asdict(parsed), priority, "running", int(time.time() * 1000))
            try:
                sha, _ = self.engine.load(wasm)
                record = AgentRecord(agent_id, sha, record.limits, priority, "running", record.created_ms)
                slot = self._slot(record, wasm)
                if state is not None and slot.instance is not None:
                    try:
                        slot.instance.restore(state)
                    except AgentError:
                        slot.instance.close()
                        raise
            except AgentError as err:
                self._collect_modules()  # a refused module leaves nothing behind
                raise NodeError(err.code, str(err), 422) from None
            self.store.save_module(sha, wasm)
            self.store.save_agent(record)
            self._records[agent_id] = record
            self.router.add(slot)
        log.info("deployed agent %s (sha256 %s)", agent_id, sha[:12])
        return self.describe(agent_id)

    def _restore(self) -> None:
        for record in self.store.agents():
            try:
                slot = self._slot(record, self.store.load_module(record.sha256))
            except (AgentError, OSError) as err:
                log.error("cannot restore agent %s: %s", record.id, err)
                continue
            self._records[record.id] = record
            self.router.add(slot)
        queued = self.store.queued_messages()
        restored = 0
        for msg in queued:
            target = self.router.agents.get(msg.receiver)
            if target is None:
                # Bound for another node when we stopped: sent on once gossip locates it.
                self.router.parked.append((msg, time.monotonic()))
                continue
            target.queue.append((msg, time.perf_counter()))
            restored += 1
        for target in self.router.agents.values():
            if target.queue and not target.suspended:
                self.router.set_suspended(target.id, False)
        if self._records or restored:
            log.info("restored %d agent(s) and %d undelivered message(s)", len(self._records), restored)
        self._collect_modules()

    def _collect_modules(self) -> None:
        """Keeps only the modules deployed agents use, stored and compiled (called under _lock,
        or before the node serves)."""
        keep = {record.sha256 for record in self._records.values()}
        removed = self.store.prune_modules(keep) + self.engine.prune(keep)
        if removed:
            log.info("removed %d module file(s) no agent uses", removed)

    def _get(self, agent_id: str) -> AgentRecord:
        record = self._records.get(agent_id)
        if record is None:
            raise NodeError("agent_not_found", f"no agent {agent_id} on node {self.id}", 404)
        return record

    def module(self, agent_id: str) -> bytes:
        """The agent's Wasm module as deployed: what moving it to another node needs."""
        return self.store.load_module(self._get(agent_id).sha256)

    def remove(self, agent_id: str, *, handoff: bool = False, to: str = "") -> int:
        """Removes the agent once the message it is handling is done (at most its deadline): its
        instance is closed only when no worker is inside it. Its queue is dead-lettered, or with
        `handoff` (the last step of moving it: copy, then remove) another node must already serve
        the same id and the queued messages follow it there; returns how many did. With `to`, that
        node must be the one gossip shows serving it, and what arrives here for the agent
        afterwards is sent there (not to a stale holder some view still shows)."""
        self._check_writable()
        if handoff:
            if to:
                if self.forwarder is None or not self.forwarder.serves(to, agent_id):
                    raise NodeError("no_other_copy", f"gossip does not show {to} alive and serving {agent_id} "
                                    f"yet (as {self.id} sees it); deploy the copy there first, or retry", 409)
            else:
                where = self.forwarder.locate(agent_id) if self.forwarder is not None else None
                if where is None or where["state"] != "alive":
                    raise NodeError("no_other_copy", f"no other alive node serves {agent_id} yet (as gossip sees "
                                    f"it from {self.id}); deploy the copy first, or retry once gossip has spread it",
                                    409)
        with self._lock:
            self._get(agent_id)
            if to and self.forwarder is not None:
                self.forwarder.handed_off(agent_id, to)
            slot = self.router.detach(agent_id)
            self.store.delete_agent(agent_id)
            del self._records[agent_id]
            self._frozen.pop(agent_id, None)
        # Waiting outside the lock: other deploys and removals go on meanwhile.
        queued: list[Message] = []
        if slot is not None:
            queued = self.router.retire(slot, keep_queue=handoff)
            if slot.instance is not None:
                slot.instance.shutdown()
                slot.instance = None
        with self._lock:
            self._collect_modules()
        for msg in queued:  # now routed to the copy: the forwarder journals each again
            try:
                self.router.route(msg)
            except (QueueFull, UnknownReceiver) as err:
                self.router.dead_letter(msg, f"handoff_failed: {err}")
        if queued:
            log.info("agent %s removed; %d queued message(s) handed to its copy", agent_id, len(queued))
        return len(queued)

    def freeze(self, agent_id: str, lease: float) -> dict[str, Any]:
        """The first step of a move: the agent stops taking messages (they queue, and travel with it
        when the handoff removes it here) and hands over its state if it keeps one. Not persisted,
        and only for `lease` seconds: a move abandoned half-way (its driver died) resumes the agent."""
        self._check_writable()
        with self._lock:
            self._get(agent_id)
            self.router.set_suspended(agent_id, True, wait=False)
            self._frozen[agent_id] = time.monotonic() + lease
        slot = self.router.agents.get(agent_id)
        state: bytes | None = None
        if slot is not None:
            with slot.lock:  # no worker inside it: the snapshot sees the state after the last message
                try:
                    state = slot.instance.snapshot() if slot.instance is not None else None
                except AgentError as err:
                    self._thaw(agent_id)
                    raise NodeError(err.code, str(err), 409) from None
        timer = threading.Timer(lease, self._thaw_expired, args=(agent_id,))
        timer.daemon = True
        timer.start()
        return {"id": agent_id, "node": self.id, "queued": len(slot.queue) if slot else 0,
                "keepsState": state is not None, "state": state}

    def _thaw_expired(self, agent_id: str) -> None:
        until = self._frozen.get(agent_id)
        if until is not None and time.monotonic() >= until:
            log.warning("move of agent %s was not finished within its lease; it runs here again", agent_id)
            self._thaw(agent_id)

    def _thaw(self, agent_id: str) -> None:
        with self._lock:
            if self._frozen.pop(agent_id, None) is None:
                return
            record = self._records.get(agent_id)
            if record is not None and record.state == "running":
                self.router.set_suspended(agent_id, False, wait=False)

    def _set_state(self, agent_id: str, suspended: bool) -> None:
        with self._lock:
            record = self._get(agent_id)
            state = "suspended" if suspended else "running"
            self._records[agent_id] = AgentRecord(
                record.id, record.sha256, record.limits, record.priority, state, record.created_ms
            )
            self.store.set_agent_state(agent_id, state)
            self.router.set_suspended(agent_id, suspended, wait=False)

    def _wait_suspended(self, agent_ids: list[str]) -> None:
        """Waits until none of these agents is inside a message (each at most its deadline, side by side)."""
        for agent_id in agent_ids:
            slot = self.router.agents.get(agent_id)
            if slot is not None:
                self.router.wait_idle(slot)

    def set_suspended(self, agent_id: str, suspended: bool) -> dict[str, Any]:
        if not suspended:
            self._frozen.pop(agent_id, None)  # resuming also ends a move's freeze
        self._set_state(agent_id, suspended)
        if suspended:
            self._wait_suspended([agent_id])
        return self.describe(agent_id)

    def suspend_by_priority(self, priority: str) -> list[str]:
        if priority not in PRIORITIES:
            raise NodeError("invalid_priority", f"priority must be one of {', '.join(PRIORITIES)}")
        chosen = [r.id for r in list(self._records.values()) if r.priority == priority and r.state == "running"]
        for agent_id in chosen:
            self._set_state(agent_id, True)
        self._wait_suspended(chosen)
        return chosen

    def resume_by_priority(self, priority: str) -> list[str]:
        """Undoes `suspend_by_priority` and `shed_load` for one priority."""
        if priority not in PRIORITIES:
            raise NodeError("invalid_priority", f"priority must be one of {', '.join(PRIORITIES)}")
        chosen = [r.id for r in list(self._records.values()) if r.priority == priority and r.state == "suspended"]
        for agent_id in chosen:
            self._set_state(agent_id, False)
        return chosen

    def shed_load(self, percentage: float) -> dict[str, Any]:
        """Suspends running agents, low priority first and the busiest first within a priority, until
        the recent message rate of those suspended reaches `percentage` of the node's (caxton_node.load).
        `resume_by_priority` undoes it."""
        if not 0 < percentage <= 100:
            raise NodeError("invalid_percentage", "percentage must be above 0 and at most 100")
        rates = {agent: rate or 0.0 for agent, rate in self.load_meter.measure()["agentRates"].items()}
        total = sum(rates.values())
        goal = total * percentage / 100
        running = [r for r in list(self._records.values()) if r.state == "running"]
        shed, chosen = 0.0, list[dict[str, Any]]()
        for record in sorted(running, key=lambda r: (PRIORITIES.index(r.priority), -rates.get(r.id, 0.0), r.id)):
            if shed >= goal:
                break
            self._set_state(record.id, True)
            shed += rates.get(record.id, 0.0)
            chosen.append({"id": record.id, "priority": record.priority, "messageRate": rates.get(record.id, 0.0)})
        self._wait_suspended([c["id"] for c in chosen])
        if chosen:
            log.warning("shed load: suspended %d agent(s), %.1f of %.1f messages/s", len(chosen), shed, total)
        return {"node": self.id, "messageRate": round(total, 2), "goal": round(goal, 2), "shed": round(shed, 2),
                "suspended": chosen}

    def describe(self, agent_id: str) -> dict[str, Any]:
        record = self._get(agent_id)
        slot = self.router.agents.get(agent_id)
        avg, p99 = slot.latency_summary() if slot else (0.0, 0.0)
        return {
            "id": record.id,
            "node": self.id,
            "state": record.state,
            "moving": agent_id in self._frozen,
            "sha256": record.sha256,
            "priority": record.priority,
            "limits": record.limits,
            "queue": len(slot.queue) if slot else 0,
            "handled": slot.handled if slot else 0,
            "failures": slot.failures if slot else 0,
            # As of its last message: the Store itself belongs to the worker running it.
            "memoryBytes": slot.memory_bytes if slot else 0,
            "logLinesDropped": slot.log_limit.dropped if slot and slot.log_limit else 0,
            "avgLatencyMs": round(avg * 1000, 3),
            "p99LatencyMs": round(p99 * 1000, 3),
        }

    def agents(self) -> list[dict[str, Any]]:
        return [self.describe(agent_id) for agent_id in list(self._records)]

    def slow_agents(self, threshold_seconds: float) -> list[dict[str, Any]]:
        slow = [a for a in self.agents() if a["p99LatencyMs"] >= threshold_seconds * 1000]
        return sorted(slow, key=lambda a: -a["p99LatencyMs"])

    # -- partitions (set by clustering) ---------------------------------------------------------

    def _check_writable(self) -> None:
        if self.read_only_reason:
            raise NodeError("read_only", f"node {self.id} is read-only: {self.read_only_reason}", 503)

    # -- operations ------------------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        """This node's load as the rebalancer weighs it (caxton_node.load, docs/rebalance.md)."""
        return {"node": self.id, **self.load_meter.measure(), "moving": sorted(self._frozen)}

    def memory_stats(self) -> dict[str, Any]:
        agents = self.agents()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "node": self.id,
            "agents": len(agents),
            "agentMemoryBytes": sum(a["memoryBytes"] for a in agents),
            "agentMemoryLimitBytes": sum(a["limits"]["memory_bytes"] for a in agents),
            "processRssBytes": rss_bytes(),
            "processMaxRssBytes": usage.ru_maxrss * 1024,
            "hostAvailableBytes": memory_available_bytes(),
            "top": sorted(agents, key=lambda a: -a["memoryBytes"])[:10],
        }

    def memory_gc(self, *, aggressive: bool) -> dict[str, Any]:
        """Gives back what can really be given back. Wasm memory never shrinks, so an idle agent
        (nothing queued) is given a fresh instance, with its snapshot if it keeps state
        (docs/agent-abi.md): only when that frees memory, or every idle one with `aggressive`.
        Then the SQLite WAL is checkpointed and truncated, and the allocator returns free pages."""
        rss_before = rss_bytes()
        restarted, freed = [], 0
        for slot in list(self.router.agents.values()):
            if slot.queue or slot.restart is None or slot.suspended:
                continue  # busy (or frozen for a move): left alone
            with slot.lock:  # no worker inside it from here on
                old = slot.instance
                if old is None or slot.removed or slot.queue:
                    continue
                try:
                    state = old.snapshot()
                    fresh = slot.restart()
                    if state is not None:
                        fresh.restore(state)
                except AgentError as err:
                    log.warning("memory gc left agent %s as it was: %s", slot.id, err)
                    continue
                before, after = old.memory_bytes(), fresh.memory_bytes()
                if after >= before and not aggressive:
                    fresh.close()
                    continue
                slot.instance, slot.memory_bytes = fresh, after
                old.close()  # not agent_shutdown: the agent lives on in the fresh instance
                restarted.append({"id": slot.id, "memoryBefore": before, "memoryAfter": after,
                                  "keptState": state is not None})
                freed += before - after
        wal = self.store.checkpoint()
        gc.collect()
        return_free_memory()
        rss_after = rss_bytes()
        log.info("memory gc: %d agent(s) restarted, %d bytes of Wasm memory and %d of WAL freed; RSS %d -> %d",
                 len(restarted), freed, wal, rss_before, rss_after)
        return {"node": self.id, "aggressive": aggressive, "restarted": restarted, "agentMemoryFreedBytes": freed,
                "walBytesFreed": wal, "rssBeforeBytes": rss_before, "rssAfterBytes": rss_after,
                "rssFreedBytes": rss_before - rss_after}

    def drain(self, timeout: float) -> dict[str, Any]:
        """Waits up to `timeout` for the queues to empty, then dead-letters what is left; while
        hibernating (the whole cluster stops and comes back on the same volumes) it keeps them."""
        deadline = time.monotonic() + timeout
        start_depth = self.router.queue_depth()
        if self.hibernating:
            return {"before": start_depth, "processed": 0, "deadLettered": 0}
        while self.router.queue_depth() and time.monotonic() < deadline and not self.router.circuit_open:
            time.sleep(0.05)
        dropped = 0
        for slot in list(self.router.agents.values()):
            with slot.lock:  # only the holder takes messages off a queue
                while slot.queue:
                    msg, _ = slot.queue.popleft()
                    self.router._dead(msg, "drained", owner=slot.id)
                    dropped += 1
        return {"before": start_depth, "processed": max(start_depth - dropped, 0), "deadLettered": dropped}

    def emergency_stop(self, dump_to: Path | None = None) -> dict[str, Any]:
        stopped = []
        for agent_id, record in list(self._records.items()):
            if record.state == "running":
                self._set_state(agent_id, True)
                stopped.append(agent_id)
        self._wait_suspended(stopped)  # nothing runs once this returns
        result: dict[str, Any] = {"node": self.id, "suspended": stopped}
        if dump_to is not None:
            dump_to.mkdir(parents=True, exist_ok=True)
            self.store.backup(dump_to / "caxton.db")
            manifest = {
                "node": self.id, "version": self.version, "ts_ms": int(time.time() * 1000),
                "agents": list(self._records), "queued": self.router.queue_depth(),
            }
            (dump_to / "manifest.json").write_text(json.dumps(manifest, indent=2))
            result["dumpedTo"] = str(dump_to)
        log.warning("emergency stop: suspended %d agent(s)", len(stopped))
        return result

    def sample_metrics(self) -> None:
        m = self.metrics
        m.sample_system()
        if self.membership is None:
            m.nodes_alive.set(1)
        else:
            counts = self.membership.counts()
            m.nodes_alive.set(counts["alive"])
            m.nodes_failed.set(counts["failed"])
            m.gossip_latency.set(self.membership.last_rtt())
        m.queue_depth.set(self.router.queue_depth())
        m.message_latency_p99.set(self.router.latency_p99() * 1000)
        slots = list(self.router.agents.values())
        m.agent_memory.set(sum(s.memory_bytes for s in slots))
        m.dead_letters_stored.set(self.store.dead_letter_count())
        workers, stalled = self.router.worker_counts()
        m.dispatch_workers.labels("running").set(workers - stalled)
        m.dispatch_workers.labels("stalled").set(stalled)
        running = sum(1 for s in slots if not s.suspended)
        m.agents.labels("running").set(running)
        m.agents.labels("suspended").set(len(slots) - running)
        security.publish(m, security.report(self, self.tokens))
        m.read_only.set(1 if self.read_only_reason else 0)
        rate = self.ramp.rate()
        m.breaker_open.set(1 if self.router.circuit_open else 0)
        m.breaker_admitted_rate.set(0 if self.router.circuit_open else (-1 if rate is None else rate))
        m.breaker_ramp.set(0 if self.router.circuit_open else self.ramp.fraction())

    def members(self) -> list[dict[str, Any]]:
        if self.membership is None:
            return [{"id": self.id, "state": "alive", "incarnation": 0, "address": "", "lastSeenSecondsAgo": 0.0,
                     "stateForSeconds": round(time.time() - self.started_at, 1), "version": self.version,
                     "agents": len(self.router.agents)}]
        return self.membership.members()

    def quorum(self) -> tuple[int, int]:
        """(expected members, quorum). Expected is bootstrap_expect or, once the cluster has
        formed, every member known and not gracefully gone: a scale-up raises the bar
        without a restart, a scale-down (members leave) lowers it, a crash does not."""
        expected = max(self.config.coordination.cluster.bootstrap_expect, 1)
        if self.membership is not None:
            present = sum(n for state, n in self.membership.counts().items() if state != "left")
            self._formed = self._formed or present >= expected
            if self._formed:
                expected = max(present, 1)
        return expected, self.config.coordination.partition.quorum_size or expected // 2 + 1

    def cluster_status(self) -> dict[str, Any]:
        members = self.members()
        alive = sum(1 for m in members if m["state"] in ("alive", "suspect"))
        expected, quorum = self.quorum()
        status = "DEGRADED" if self.read_only_reason or alive < quorum else "HEALTHY"
        return {
            "node": self.id, "status": status, "version": self.version,
            "members": {"total": len(members), "alive": sum(1 for m in members if m["state"] == "alive"),
                        "suspect": sum(1 for m in members if m["state"] == "suspect"),
                        "failed": sum(1 for m in members if m["state"] == "failed")},
            "expected": expected, "quorum": quorum, "readOnly": bool(self.read_only_reason),
            "droppedGossipPackets": self.membership.dropped_packets if self.membership else 0,
            "gossipKeyring": self.membership.keyring.describe() if self.membership else None,
            "queuedWrites": self.forwarder.queued() if self.forwarder else 0,
            "uptimeSeconds": round(time.time() - self.started_at, 1),
        }

    def peer_http(self, timeout: float = 3.0) -> httpx.Client:
        """An HTTP client whose connections leave from this node's own address, as its
        gossip and peer traffic do (so network rules between nodes apply to it too)."""
        source = self.membership.swim.me.addr[0] if self.membership else None
        return httpx.Client(timeout=timeout, transport=httpx.HTTPTransport(local_address=source))

    def partition_view(self) -> dict[str, Any]:
        """Which members this node can reach, and which side of a partition it is on."""
        status = self.cluster_status()
        members = self.members()
        reachable = sorted(m["id"] for m in members if m["state"] in ("alive", "suspect"))
        unreachable = sorted(m["id"] for m in members if m["state"] == "failed")
        has_quorum = len(reachable) >= status["quorum"]
        return {
            "node": self.id, "partitioned": bool(unreachable), "quorum": status["quorum"],
            "side": "majority" if has_quorum else "minority",
            "reachable": reachable, "unreachable": unreachable,
        }

    def performance(self) -> dict[str, Any]:
        """Routing latency and gossip probe round trips as distributions (ms); a figure with no
        samples behind it is None, so nobody mistakes "nothing measured" for "fast"."""
        latencies = sorted(self.router._latencies)
        rtts = sorted(self.membership.rtt_samples()) if self.membership else []

        def pct(values: list[float], q: float) -> float | None:
            return round(values[min(len(values) - 1, int(len(values) * q))] * 1000, 3) if values else None

        return {
            "node": self.id,
            "routingP50Ms": pct(latencies, 0.5), "routingP99Ms": pct(latencies, 0.99),
            "messagesObserved": len(latencies),
            "gossipRttP50Ms": pct(rtts, 0.5), "gossipRttP90Ms": pct(rtts, 0.9), "gossipRttP99Ms": pct(rtts, 0.99),
            "gossipProbesObserved": len(rtts),
            "queueDepth": self.router.queue_depth(),
            "agents": len(self.router.agents),
            "targets": {"routingP99Ms": 1.0, "gossipRttP50Ms": 50.0, "gossipRttP99Ms": 50.0},
        }

    def close(self) -> None:
        self.events.detach()
        self.router.stop()
        queues = {}
        for slot in list(self.router.agents.values()):
            with slot.lock:  # a worker still inside a message finishes it first
                if slot.instance is not None:
                    slot.instance.shutdown()
                    slot.instance = None
                queues[slot.id] = [msg for msg, _ in slot.queue]
        self.store.requeue(queues)
        self.store.close()
        self.engine.close()

