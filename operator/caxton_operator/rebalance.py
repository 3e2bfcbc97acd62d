"""Moving agents between nodes: what a scale-down does before a node goes away.

An agent moves by copy-then-remove: its module is fetched from the leaving node,
deployed with the same id, limits and priority on the least-loaded staying node,
and only then removed from the leaving one, so at every moment some node serves it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from caxton_operator.nodeapi import NodeApi, NodeUnavailable, least_loaded


@dataclass(frozen=True)
class Move:
    agent: str
    source: str
    target: str


def deploy_limits(described: dict[str, Any]) -> dict[str, Any]:
    """The deploy API's limits from the node's description of a running agent."""
    limits = described.get("limits") or {}
    out: dict[str, Any] = {"memory": str(limits["memory_bytes"]), "deadline": f"{limits['deadline_seconds']}s"}
    if limits.get("fuel") is not None:
        out["fuel"] = limits["fuel"]
    return out


def move_agents_off(api: NodeApi, leaving: list[str], staying: list[str], log: logging.Logger) -> list[Move]:
    """Moves every agent of the `leaving` nodes to the least-loaded `staying` ones, then lets
    each leaving node finish its backlog. A leaving node that does not answer is skipped
    (its declarative agents are re-placed by their CaxtonAgent)."""
    loads = {pod: len(agents) for pod, agents in api.agents_by_node(staying).items()}
    if not loads:
        raise NodeUnavailable(f"none of the staying nodes ({', '.join(staying)}) answers; cannot move agents")
    moves = []
    for source in leaving:
        try:
            agents = api.json(source, "GET", "/v1/agents")
        except NodeUnavailable as err:
            log.warning("not draining %s: %s", source, err)
            continue
        for agent in agents:
            target = least_loaded(loads)
            assert target is not None
            wasm = api.call(source, "GET", f"/v1/agents/{agent['id']}/module").content
            api.deploy(target, agent["id"], wasm, limits=deploy_limits(agent), priority=agent["priority"])
            api.remove(source, agent["id"])
            loads[target] += 1
            moves.append(Move(agent["id"], source, target))
            log.info("moved agent %s from %s to %s", agent["id"], source, target)
        api.call(source, "POST", "/v1/queue/drain", json={"timeout": "10s"}, timeout=30.0)
    return moves
