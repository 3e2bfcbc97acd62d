"""The least-loaded rebalance planner: a pure plan from the loads the nodes report.

Load is defined once (docs/rebalance.md). Each agent weighs
`0.5 + 0.5 * its message rate / the mean agent rate` (1 when nothing is measured), so an
agent of average traffic weighs 1 and a node's load is the sum of its agents' weights:
with no traffic it is just the agent count, and a busy agent counts for more than an idle
one. A node whose memory is above MEMORY_CEILING of its limit receives nothing.

The imbalance is the largest relative distance of a node's load from the mean:
`max(|load(n) - mean| / mean)`. 0 is perfectly even; a new empty node makes it 1 (100%).
Moves are proposed while it is above the threshold (`spec.rebalance.threshold`), each
taking the agent from the most loaded node to the least loaded one that brings the two
closest together, and only when the pair strictly gets closer: so the plan ends, and
with few agents it may end above the threshold (the reason says so).

`gates` says whether moves may start now; each blocking gate is named, as the upgrade
roller names its gates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MEMORY_CEILING = 0.85  # a node above this fraction of its memory limit receives no agents


@dataclass(frozen=True)
class AgentLoad:
    id: str
    rate: float = 0.0  # messages a second, recently
    movable: bool = True  # False while it is frozen by another move


@dataclass(frozen=True)
class NodeLoad:
    node: str
    agents: tuple[AgentLoad, ...] = ()
    memory_fraction: float | None = None  # resident memory / limit


@dataclass(frozen=True)
class Proposal:
    agent: str
    source: str
    target: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"agent": self.agent, "from": self.source, "to": self.target, "reason": self.reason}


@dataclass
class Plan:
    moves: list[Proposal] = field(default_factory=list)
    before: float = 0.0  # imbalance now
    after: float = 0.0  # imbalance once the moves are done
    loads: dict[str, float] = field(default_factory=dict)  # node -> load now
    note: str = ""  # why the plan stops where it does


def parse_threshold(text: str) -> float:
    """"20%" -> 0.2 (the CRD's pattern has already checked the form)."""
    return float(text.rstrip("%")) / 100.0


def weights(nodes: list[NodeLoad]) -> dict[str, float]:
    agents = [a for n in nodes for a in n.agents]
    mean_rate = sum(a.rate for a in agents) / len(agents) if agents else 0.0
    if mean_rate <= 0:
        return {a.id: 1.0 for a in agents}
    return {a.id: 0.5 + 0.5 * a.rate / mean_rate for a in agents}


def imbalance(loads: Mapping[str, float]) -> float:
    if not loads:
        return 0.0
    mean = sum(loads.values()) / len(loads)
    if mean <= 0:
        return 0.0
    return max(abs(load - mean) for load in loads.values()) / mean


def plan(nodes: list[NodeLoad], threshold: float, *, max_moves: int) -> Plan:
    weight = weights(nodes)
    loads = {n.node: sum(weight[a.id] for a in n.agents) for n in nodes}
    result = Plan(before=imbalance(loads), loads={k: round(v, 2) for k, v in loads.items()})
    held = {n.node: [a for a in n.agents if a.movable] for n in nodes}
    full = {n.node for n in nodes if n.memory_fraction is not None and n.memory_fraction > MEMORY_CEILING}
    while True:
        now = imbalance(loads)
        if now <= threshold:
            result.note = f"imbalance {now:.0%} is within the threshold {threshold:.0%}"
            break
        if len(result.moves) >= max_moves:
            result.note = f"stopped after {max_moves} moves (the rest waits for the next round)"
            break
        source = max(loads, key=lambda n: (loads[n], n))
        open_ = [n for n in loads if n != source and n not in full]
        if not open_:
            result.note = "no node can take agents (the others are above their memory ceiling)"
            break
        target = min(open_, key=lambda n: (loads[n], n))
        gap = loads[source] - loads[target]
        # The agent that leaves the pair closest to even; only moves that narrow the gap count.
        candidates = [a for a in held[source] if weight[a.id] < gap]
        if not candidates:
            result.note = (f"imbalance {now:.0%} is above the threshold {threshold:.0%}, but no single move "
                           f"narrows the gap between {source} and {target}")
            break
        agent = min(candidates, key=lambda a: (abs(gap - 2 * weight[a.id]), a.id))
        mean = sum(loads.values()) / len(loads)
        result.moves.append(Proposal(agent.id, source, target,
                                     f"{source} load {loads[source]:.1f}, {target} {loads[target]:.1f}, "
                                     f"mean {mean:.1f}"))
        held[source].remove(agent)
        loads[source] -= weight[agent.id]
        loads[target] += weight[agent.id]
    result.after = imbalance(loads)
    return result


@dataclass(frozen=True)
class World:
    """What the gates look at, gathered by the handler."""

    strategy: str  # spec.rebalance.strategy, or the request's
    requested: bool  # an explicit `cluster rebalance` is waiting
    upgrading: str  # the CaxtonUpgrade or drain holding the cluster, "" if none
    partitioned: bool
    unanswered: tuple[str, ...]  # staying nodes that did not report their load
    scaling: bool  # the StatefulSet does not have spec.replicas ready pods yet
    seconds_since_last_move: float | None
    cooldown: float
    backing_up: str = ""  # the CaxtonBackup of this cluster still running, "" if none


def gates(world: World) -> list[str]:
    """The named gates that block moves now (empty: moves may start). A request skips the
    strategy and cooldown gates, never the safety ones."""
    blocked = []
    if world.strategy == "none" and not world.requested:
        blocked.append("strategy_allows_moves: spec.rebalance.strategy is none")
    if world.upgrading:
        blocked.append(f"no_upgrade_in_progress: {world.upgrading}")
    if world.backing_up:
        # Node by node, a backup would catch a moving agent on both nodes (or on neither).
        blocked.append(f"no_backup_in_progress: {world.backing_up}")
    if world.partitioned:
        blocked.append("no_partition: a member is cut off")
    if world.unanswered:
        blocked.append(f"every_node_reports_load: no answer from {', '.join(world.unanswered)}")
    if world.scaling:
        blocked.append("not_scaling: waiting for every node to be ready")
    if (not world.requested and world.seconds_since_last_move is not None
            and world.seconds_since_last_move < world.cooldown):
        blocked.append(f"cooldown_elapsed: {world.seconds_since_last_move:.0f}s since the last move, "
                       f"{world.cooldown:.0f}s between automatic rounds")
    return blocked


def pending(request: dict[str, Any] | None, previous: dict[str, Any]) -> dict[str, Any] | None:
    """The `cluster rebalance` request still to act on, given the last status.rebalance: a new one,
    or the one whose run is still moving. An answered one (dry runs included) is done with."""
    if request is None or request.get("id") != previous.get("requestId"):
        return request
    return request if previous.get("phase") == "Moving" and previous.get("trigger") == "Requested" else None
