"""Real node processes gossiping over UDP on their own loopback addresses."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.support.nodes import NodeFactory, cluster_node, gossip_key, start_cluster, states, wait_all_alive
from tests.support.waiting import wait_for


def test_three_nodes_converge_and_report_members(node_factory: NodeFactory, tmp_path: Path) -> None:
    nodes = start_cluster(node_factory, tmp_path, 3)
    with nodes[1].client() as client:
        status = client.get("/v1/cluster/status").json()
    assert status["status"] == "HEALTHY"
    assert status["members"] == {"total": 3, "alive": 3, "suspect": 0, "failed": 0}
    assert status["quorum"] == 2
    metrics = httpx.get(nodes[2].metrics_url).text
    assert "caxton_cluster_nodes_alive 3.0" in metrics


def test_killed_node_is_suspected_then_failed_and_rejoins(node_factory: NodeFactory, tmp_path: Path) -> None:
    nodes = start_cluster(node_factory, tmp_path, 3)
    victim, watchers = nodes[2], nodes[:2]
    victim.stop(signal.SIGKILL)
    killed = time.monotonic()
    seen_suspect: dict[str, float] = {}

    def failed_everywhere() -> bool:
        for w in watchers:
            state = states(w)[victim.node_id]
            if state == "suspect":
                seen_suspect.setdefault(w.node_id, time.monotonic() - killed)
        return all(states(w)[victim.node_id] == "failed" for w in watchers)

    wait_for(failed_everywhere, timeout=30, what=f"{victim.node_id} failed on every member", interval=0.05)
    failed_after = time.monotonic() - killed
    assert seen_suspect, "the victim went straight to failed without being suspected"
    # Configured: a probe period (0.5s) per member to notice, then suspicion_multiplier x probe periods.
    assert min(seen_suspect.values()) < failed_after
    victim.start()
    wait_all_alive(nodes)


def test_node_with_the_wrong_gossip_key_cannot_join(node_factory: NodeFactory, tmp_path: Path) -> None:
    nodes = start_cluster(node_factory, tmp_path, 2)
    intruder = cluster_node(node_factory, gossip_key(tmp_path / "other-keys"), [f"{nodes[0].address}:7946"], 3)
    time.sleep(3)
    assert intruder.node_id not in states(nodes[0])
    assert set(states(intruder)) == {intruder.node_id}
    with nodes[0].client() as client:
        assert client.get("/v1/cluster/status").json()["droppedGossipPackets"] > 0
