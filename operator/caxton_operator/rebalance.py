"""Moving agents between nodes: the one move path (`move_agent`) and its bulk uses.

An agent moves by freeze, copy, then remove with handoff: at every moment some node
serves it, its queued messages travel with it, and its state too when its module
exports the snapshot pair. Scale-in, the upgrade roller's drains and the rebalancer
(`caxton_operator.balance`) all move agents through `move_agent`.
"""

from __future__ import annotations

import logging
import time
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


def move_agent(api: NodeApi, agent: dict[str, Any], source: str, target: str, *,
               handoff_wait: float = 15.0, lease: str = "120s") -> Move:
    """The one way an agent changes node (scale-in, upgrade drains, rebalancing), losing nothing:

    1. freeze on `source`: it stops running there, new messages queue behind the old ones, and its
       snapshot comes back if the module keeps state (docs/agent-abi.md); the freeze has a lease,
       so a mover that dies half-way leaves the agent running where it was;
    2. deploy the copy on `target` with that snapshot (senders route to it as soon as gossip
       carries the directory change);
    3. remove on `source` with handoff: its queue goes to the copy through the peer channel
       (journaled, acked, repeats dropped), and so does any straggler still arriving there.

    A failure before step 3 resumes the source; the copy, if made, is removed with handoff too.
    """
    agent_id = agent["id"]
    frozen = api.json(source, "POST", f"/v1/agents/{agent_id}/freeze", json={"lease": lease})
    try:
        wasm = api.call(source, "GET", f"/v1/agents/{agent_id}/module").content
        api.deploy(target, agent_id, wasm, limits=deploy_limits(agent), priority=agent["priority"],
                   state=frozen.get("state"))
        if agent.get("state") == "suspended":
            api.call(target, "POST", f"/v1/agents/{agent_id}/suspend")
    except NodeUnavailable:
        _undo(api, agent, source, target=None)
        raise
    deadline = time.monotonic() + handoff_wait
    while True:
        try:
            api.call(source, "DELETE", f"/v1/agents/{agent_id}?handoff=true&to={target}")
            break
        except NodeUnavailable as err:
            if err.code == "agent_not_found":
                break
            if err.code != "no_other_copy" or time.monotonic() > deadline:
                _undo(api, agent, source, target=target)
                raise
            time.sleep(0.2)
    return Move(agent_id, source, target)


def _undo(api: NodeApi, agent: dict[str, Any], source: str, *, target: str | None) -> None:
    """A move that cannot finish: the source runs the agent again (unless it was suspended), and a
    copy already made hands back what it received (best effort: the freeze's lease is the backstop)."""
    agent_id = agent["id"]
    try:
        if agent.get("state") != "suspended":
            api.call(source, "POST", f"/v1/agents/{agent_id}/resume")
        if target is not None:
            api.call(target, "DELETE", f"/v1/agents/{agent_id}?handoff=true&to={source}")
    except NodeUnavailable:
        pass


def move_agents_off(api: NodeApi, leaving: list[str], staying: list[str], log: logging.Logger,
                    *, drain_timeout: str = "10s") -> list[Move]:
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
            moves.append(move_agent(api, agent, source, target))
            loads[target] += 1
            log.info("moved agent %s from %s to %s", agent["id"], source, target)
        api.call(source, "POST", "/v1/queue/drain", json={"timeout": drain_timeout}, timeout=30.0)
    return moves


def balance_onto(api: NodeApi, targets: list[str], nodes: list[str], log: logging.Logger) -> list[Move]:
    """Moves agents from the most loaded of `nodes` onto `targets` (nodes back from a restart)
    until each target holds its fair share, so a canary carries real traffic."""
    loads = {pod: [a for a in agents] for pod, agents in api.agents_by_node(nodes).items()}
    targets = [t for t in targets if t in loads]
    if not targets:
        return []
    fair = sum(len(a) for a in loads.values()) // len(loads)
    moves = []
    for target in targets:
        while len(loads[target]) < fair:
            sources = sorted(((len(a), pod) for pod, a in loads.items() if pod not in targets), reverse=True)
            if not sources or sources[0][0] <= len(loads[target]) + 1:
                break
            source = sources[0][1]
            agent = loads[source].pop()
            moves.append(move_agent(api, agent, source, target))
            loads[target].append(agent)
            log.info("moved agent %s from %s to %s", agent["id"], source, target)
    return moves
