"""Where a CaxtonAgent's replicas should run: a pure plan from what the nodes report.

Replica i of agent `a` is the node-level agent `a-i`. Each replica lives on exactly
one node: found where it already runs (duplicates are removed), otherwise placed on
the least-loaded eligible node, preferring nodes without another replica of the
same agent. A replica whose node stops answering keeps its place for
`replace_after` seconds (a restarting pod brings its agents back from its volume)
and is then placed elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from caxton_operator.nodeapi import least_loaded


@dataclass(frozen=True)
class Desired:
    name: str
    replicas: int
    sha256: str
    limits: dict[str, Any]  # normalized: memory_bytes, deadline_seconds, fuel
    priority: str

    def replica_id(self, index: int) -> str:
        return f"{self.name}-{index}"

    def owns(self, agent_id: str) -> bool:
        return re.fullmatch(rf"{re.escape(self.name)}-\d+", agent_id) is not None

    def matches(self, described: dict[str, Any]) -> bool:
        limits = described.get("limits") or {}
        return (described.get("sha256") == self.sha256 and described.get("priority") == self.priority
                and all(limits.get(k) == v for k, v in self.limits.items()))


@dataclass
class Plan:
    deploy: list[tuple[str, str]] = field(default_factory=list)  # (agent id, node)
    remove: list[tuple[str, str]] = field(default_factory=list)  # (agent id, node), done after deploys
    replace: list[tuple[str, str]] = field(default_factory=list)  # (agent id, node): remove, then deploy there
    placement: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ready(self) -> int:
        return sum(1 for p in self.placement if p["state"] in ("running", "suspended"))

    @property
    def changes(self) -> bool:
        return bool(self.deploy or self.remove or self.replace)


def plan(desired: Desired, found: dict[str, list[dict[str, Any]]], eligible: list[str],
         previous: list[dict[str, Any]], now: float, replace_after: float,
         closed: Collection[str] = ()) -> Plan:
    """`found`: agents of every node that answered; `eligible`: nodes that may hold agents
    (answering, and not leaving the cluster); `previous`: the last placement in status;
    `closed`: eligible nodes being drained for a restart, which keep what they run (the roller
    moves it, handing over queued messages) but receive nothing new."""
    result = Plan()
    before = {p["replica"]: p for p in previous}
    loads = {pod: len(found.get(pod, [])) for pod in eligible if pod not in closed}
    wanted = {desired.replica_id(i) for i in range(desired.replicas)}
    # Nodes holding a replica of this agent: new replicas go elsewhere when they can.
    hosting = {pod for pod in eligible for a in found.get(pod, []) if a["id"] in wanted}

    def choose() -> str | None:
        target = least_loaded(loads, exclude=hosting) or least_loaded(loads)
        if target is not None:
            loads[target] += 1
            hosting.add(target)
        return target

    for index in range(desired.replicas):
        agent_id = desired.replica_id(index)
        hosts = {pod: a for pod, agents in found.items() for a in agents if a["id"] == agent_id}
        good = [pod for pod in sorted(hosts) if pod in eligible and desired.matches(hosts[pod])]
        last = before.get(agent_id, {})
        if good:
            # A copy being moved (off a closed node, or frozen by a move) is kept where it goes; the
            # original is the mover's to remove, with its queue handed over.
            moving = {pod for pod in good if hosts[pod].get("moving")}
            open_good = [pod for pod in good if pod not in closed and pod not in moving]
            keep: str = last["node"] if last.get("node") in open_good else (open_good or good)[0]
            hosting.add(keep)
            result.remove += [(agent_id, pod) for pod in sorted(hosts)
                              if pod != keep and pod not in closed and pod not in moving]
            result.placement.append({"replica": agent_id, "node": keep, "state": hosts[keep]["state"]})
            continue
        stale = [pod for pod in sorted(hosts) if pod in eligible]
        if stale:  # running here with another module, limits or priority: redeploy in place
            keep = stale[0]
            hosting.add(keep)
            result.replace.append((agent_id, keep))
            result.remove += [(agent_id, pod) for pod in sorted(hosts) if pod != keep]
            result.placement.append({"replica": agent_id, "node": keep, "state": "updating"})
            continue
        node = last.get("node")
        if not hosts and node and node not in found:
            since = float(last.get("unavailableSince") or now)
            if now - since < replace_after:
                result.placement.append({"replica": agent_id, "node": node, "state": "node-unavailable",
                                         "unavailableSince": since})
                continue
        target = choose()
        if target is None:
            result.placement.append({"replica": agent_id, "node": "", "state": "pending"})
            continue
        result.deploy.append((agent_id, target))
        result.remove += [(agent_id, pod) for pod in sorted(hosts)]  # on leaving nodes
        result.placement.append({"replica": agent_id, "node": target, "state": "starting"})
    for pod, agents in sorted(found.items()):
        for agent in agents:
            if desired.owns(agent["id"]) and int(agent["id"].rsplit("-", 1)[1]) >= desired.replicas:
                result.remove.append((agent["id"], pod))
    return result
