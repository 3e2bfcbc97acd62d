"""Prometheus metrics of a node, with the runbook's names.

Each node has its own registry (several nodes may share a process in tests and
benchmarks). Labels are bounded: per-agent series exist only for gauges that
the runbook asks per agent, and are removed with the agent. Where a runbook
name breaks Prometheus conventions, docs/metrics.md says what is published.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

from caxton_node.system import memory_available_bytes

LATENCY_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
)


class _BeforeScrape:
    """Registered first, so its collect() refreshes the gauges just before they are read."""

    def __init__(self) -> None:
        self.callback: Callable[[], None] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.callback is not None:
            self.callback()
        return iter(())


class NodeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.before_scrape = _BeforeScrape()
        r.register(self.before_scrape)
        self.nodes_alive = Gauge("caxton_cluster_nodes_alive", "Cluster members seen alive", registry=r)
        self.nodes_failed = Gauge("caxton_cluster_nodes_failed", "Cluster members marked failed", registry=r)
        # The runbook names this caxton_cluster_gossip_latency_ms; promtool rejects abbreviated
        # units in names, so it is published in base units (docs/metrics.md).
        self.gossip_latency = Gauge(
            "caxton_cluster_gossip_latency_seconds", "Round-trip time of the last gossip probe", registry=r
        )
        self.message_latency = Histogram(
            "caxton_agent_message_latency_seconds", "Time from accepting a message to its handler returning",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.message_latency_p99 = Gauge(
            "caxton_agent_message_latency_p99", "P99 message latency over the last 1024 messages (ms)", registry=r
        )
        self.crashes = Counter("caxton_agent_crashes", "Agent traps (deadline, fuel, fault)", ["reason"], registry=r)
        self.agent_memory = Gauge(
            "caxton_agent_memory_used_bytes", "Linear memory of all agents (bytes)", registry=r
        )
        self.agents = Gauge("caxton_agents", "Agents on this node by state", ["state"], registry=r)
        self.cpu_percent = Gauge("caxton_system_cpu_usage_percent", "CPU used by this node process", registry=r)
        self.memory_available = Gauge(
            "caxton_system_memory_available_bytes", "Memory available on the host", registry=r
        )
        self.queue_depth = Gauge("caxton_queue_depth", "Messages waiting in agent queues", registry=r)
        self.dead_letters = Counter("caxton_dead_letters", "Messages sent to the dead-letter queue",
                                    ["reason"], registry=r)
        self.dead_letters_stored = Gauge("caxton_dead_letters_stored", "Dead letters kept in the data directory",
                                         registry=r)
        self.dead_letters_discarded = Counter(
            "caxton_dead_letters_discarded",
            "Dead letters not kept: over an agent's count or rate bound, or past the maximum age", ["why"],
            registry=r,
        )
        self.log_lines_dropped = Counter("caxton_agent_log_lines_dropped",
                                         "Agent log lines over the per-message or per-second limit", registry=r)
        self.dispatch_workers = Gauge("caxton_dispatch_workers", "Dispatcher workers, running or stalled in a "
                                      "long message", ["state"], registry=r)
        self.read_only = Gauge("caxton_cluster_read_only",
                               "1 while this node is on the minority side of a partition (read-only)", registry=r)
        self.breaker_open = Gauge("caxton_circuit_breaker_open", "1 while the circuit breaker pauses delivery",
                                  registry=r)
        self.breaker_admitted_rate = Gauge(
            "caxton_circuit_breaker_admitted_rate",
            "New messages per second admitted during a gradual reset (-1: unlimited, 0: breaker active)", registry=r)
        self.breaker_ramp = Gauge("caxton_circuit_breaker_ramp_ratio",
                                  "How far a gradual reset has ramped (1: full rate)", registry=r)
        self.messages_routed = Counter("caxton_messages_routed", "Messages routed", ["destination"], registry=r)
        self.convergence_seconds = Gauge(
            "caxton_cluster_gossip_convergence_seconds", "Time the last membership change took to spread",
            registry=r,
        )
        # The peer channel: what really crossed to or from another node (a `remote` route only
        # queues), and repeats the receiver dropped (retries after a lost ack).
        self.peer_messages = Counter("caxton_peer_messages", "Messages over the peer channel",
                                     ["direction"], registry=r)
        self.peer_sent = self.peer_messages.labels("sent")
        self.peer_received = self.peer_messages.labels("received")
        self.peer_duplicates = self.peer_messages.labels("duplicate")
        # Refused mTLS handshakes on the peer port, as server (a peer we did not trust, or that did
        # not trust us) and as client: a CA rotation done right leaves these unchanged.
        self.tls_handshake_failures = Counter(
            "caxton_peer_tls_handshake_failures", "Peer TLS handshakes refused (unknown CA, bad certificate, "
            "wrong CN)", ["side"], registry=r)
        for side in ("server", "client"):
            self.tls_handshake_failures.labels(side)
        # What the node serves and trusts, by fingerprint (never key material); refreshed before each
        # scrape from the loaded contexts, the keyring and the accepted API tokens.
        self.tls_certificate = Gauge(
            "caxton_tls_certificate_info", "The node's loaded TLS material: role=leaf (served) or ca (trusted)",
            ["role", "fingerprint", "subject"], registry=r)
        self.tls_leaf_expiry = Gauge("caxton_tls_certificate_expiry_timestamp_seconds",
                                     "When the served node certificate expires (Unix time)", registry=r)
        self.gossip_keys = Gauge("caxton_gossip_keyring_key_info",
                                 "Gossip keys loaded, by key id (primary=true seals)", ["key_id", "primary"],
                                 registry=r)
        self.api_tokens = Gauge("caxton_api_tokens_accepted_info",
                                "API tokens accepted, by id (a hash prefix; primary=true is the one clients send)",
                                ["token_id", "primary"], registry=r)
        # Hot paths keep their labelled children.
        self.routed_local = self.messages_routed.labels("local")
        self.routed_mailbox = self.messages_routed.labels("mailbox")
        self.routed_remote = self.messages_routed.labels("remote")
        self._cpu_lock = threading.Lock()
        self._cpu_last = (time.monotonic(), time.process_time())

    def sample_system(self) -> None:
        """CPU since the previous sample and host memory; called before each scrape."""
        with self._cpu_lock:
            now, cpu = time.monotonic(), time.process_time()
            wall = now - self._cpu_last[0]
            if wall > 0.05:
                self.cpu_percent.set(100.0 * (cpu - self._cpu_last[1]) / wall)
                self._cpu_last = (now, cpu)
        self.memory_available.set(memory_available_bytes())
