"""Real node processes gossiping over UDP on their own loopback addresses."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx

from tests.support.nodes import (
    GOSSIP,
    NodeFactory,
    NodeProcess,
    cluster_node,
    gossip_key,
    start_cluster,
    states,
    wait_all_alive,
)
from tests.support.waiting import wait_for

# suspicion_multiplier x max(1, log10 3) x probe_interval under the test clusters' settings.
assert (GOSSIP["suspicion_multiplier"], GOSSIP["probe_interval"]) == (2, "500ms")
SUSPICION_TIMEOUT = 2 * 0.5


def test_three_nodes_converge_and_report_members(node_factory: NodeFactory, tmp_path: Path) -> None:
    nodes = start_cluster(node_factory, tmp_path, 3)
    with nodes[1].client() as client:
        status = client.get("/v1/cluster/status").json()
    assert status["status"] == "HEALTHY"
    assert status["members"] == {"total": 3, "alive": 3, "suspect": 0, "failed": 0}
    assert status["quorum"] == 2
    metrics = httpx.get(nodes[2].metrics_url).text
    assert "caxton_cluster_nodes_alive 3.0" in metrics


def membership_events(node: NodeProcess, member: str) -> list[dict[str, Any]]:
    """The node's structured membership changes for `member` (GET /v1/cluster/events), oldest first."""
    with node.client() as client:
        events: list[dict[str, Any]] = client.get("/v1/cluster/events").json()
    return [e for e in events if e.get("member") == member]


def test_killed_node_is_suspected_then_failed_and_rejoins(node_factory: NodeFactory, tmp_path: Path) -> None:
    nodes = start_cluster(node_factory, tmp_path, 3)
    victim, watchers = nodes[2], nodes[:2]
    victim.stop(signal.SIGKILL)
    for w in watchers:
        wait_for(lambda w=w: states(w)[victim.node_id] == "failed", timeout=30,  # type: ignore[misc]
                 what=f"{victim.node_id} failed on {w.node_id}")
    # The nodes' own record of each transition, not a poll that might miss a short suspicion.
    suspicions = []
    for w in watchers:
        changes = [(e["previous"], e["state"], e["ts"]) for e in membership_events(w, victim.node_id)]
        transitions = [(before, after) for before, after, _ in changes]
        # Joined, then suspected (never straight to failed), then failed, each once.
        assert transitions[-2:] == [("alive", "suspect"), ("suspect", "failed")], transitions
        suspicions.append(changes[-1][2] - changes[-2][2])
    # Failed only after the configured suspicion timeout, during which it could have refuted. The node
    # that raised the suspicion times it from its own event; another watcher may hear of the suspicion
    # later through gossip, so its own window can be shorter.
    assert max(suspicions) >= SUSPICION_TIMEOUT - 0.01, suspicions
    victim.start()
    wait_all_alive(nodes)
    for w in watchers:
        assert [(e["previous"], e["state"]) for e in membership_events(w, victim.node_id)][-1] == ("failed", "alive")


def test_node_with_the_wrong_gossip_key_cannot_join(node_factory: NodeFactory, tmp_path: Path) -> None:
    nodes = start_cluster(node_factory, tmp_path, 2)
    intruder = cluster_node(node_factory, gossip_key(tmp_path / "other-keys"), [f"{nodes[0].address}:7946"], 3)

    def dropped() -> int:
        with nodes[0].client() as client:
            count: int = client.get("/v1/cluster/status").json()["droppedGossipPackets"]
        return count

    # The intruder retries its join every second: three refused attempts, not a fixed sleep.
    wait_for(lambda: dropped() >= 3, timeout=30, what="three of the intruder's packets to be dropped")
    assert intruder.node_id not in states(nodes[0])
    assert set(states(intruder)) == {intruder.node_id}
