"""What the roller observes, as plain values: the planner decides from these alone.

The Kopf handler fills them from the API server (StatefulSet, pods, the cluster's
annotations) and from the nodes through the pod proxy (members, agents, backlog,
/metrics); the unit tests write them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PodView:
    name: str
    ordinal: int
    revision: str  # the controller-revision-hash label
    version: str  # the image tag it runs
    ready: bool
    restarts: int = 0
    crash_looping: bool = False  # waiting in CrashLoopBackOff, or exited again and again
    terminating: bool = False
    agents: int | None = None  # agents on its node; None: the node did not answer
    backlog: int | None = None  # queued messages (agents' queues and outbound); None: no answer


@dataclass(frozen=True)
class MemberView:
    name: str
    state: str  # alive, suspect, failed, left
    version: str = ""


@dataclass(frozen=True)
class MetricSample:
    """One node's counters from its /metrics, the numbers Prometheus scrapes."""

    handled: float = 0.0  # caxton_agent_message_latency_seconds_count
    buckets: tuple[tuple[float, float], ...] = ()  # (le, cumulative count) of that histogram
    crashes: float = 0.0  # caxton_agent_crashes_total, all reasons
    dead_letters: float = 0.0  # caxton_dead_letters_total except agent_failed (a crash already counts)

    def to_json(self) -> dict[str, Any]:
        return {"handled": self.handled, "buckets": [list(b) for b in self.buckets], "crashes": self.crashes,
                "deadLetters": self.dead_letters}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> MetricSample:
        buckets = raw.get("buckets") or []
        return cls(handled=float(raw.get("handled") or 0), buckets=tuple((float(le), float(n)) for le, n in buckets),
                   crashes=float(raw.get("crashes") or 0), dead_letters=float(raw.get("deadLetters") or 0))


@dataclass(frozen=True)
class StatefulSetView:
    replicas: int
    version: str  # the template's image tag
    restart_token: str  # the template's caxton.dev/restarted-by annotation
    partition: int
    update_revision: str
    current_revision: str
    settled: bool = True  # the controller has seen the latest spec (observedGeneration)


@dataclass(frozen=True)
class ClusterView:
    name: str
    version: str  # spec.version
    replicas: int
    holder: str = ""  # the CaxtonUpgrade holding the cluster (annotation), "" if none
    holder_active: bool = False  # that upgrade exists and has not finished


@dataclass(frozen=True)
class World:
    now: float
    cluster: ClusterView | None
    sts: StatefulSetView | None
    pods: tuple[PodView, ...] = ()
    members: tuple[MemberView, ...] | None = None  # None: no node answered
    views_agree: bool | None = None  # every answering node sees the same members alive (None: unknown)
    metrics: dict[str, MetricSample] = field(default_factory=dict)  # by pod, nodes that answered
    baseline: dict[str, MetricSample] = field(default_factory=dict)  # saved when the canary hold began
    requests: frozenset[str] = frozenset()  # "promote", "rollback" (annotations on the CaxtonUpgrade)

    def pod(self, name: str) -> PodView | None:
        return next((p for p in self.pods if p.name == name), None)

    def member(self, name: str) -> MemberView | None:
        return next((m for m in self.members or () if m.name == name), None)
