"""A real partition (iptables) of a 5-node cluster: the minority turns read-only and queues,
the majority stays healthy, and after the heal every queued message arrives once, in order."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from tests.cli.test_direct_mode import caxton
from tests.node.cluster.test_cross_node import send_when_known
from tests.node.test_agents import collect, deploy
from tests.support.netfault import NetworkPartition
from tests.support.nodes import NodeFactory, NodeProcess, start_cluster, states
from tests.support.waiting import wait_for


def status(node: NodeProcess) -> dict[str, object]:
    with node.client() as client:
        result: dict[str, object] = client.get("/v1/cluster/status").json()
    return result


def test_minority_queues_and_replays_exactly_once_after_heal(
    node_factory: NodeFactory, agents: dict[str, bytes], tmp_path: Path, partition: NetworkPartition
) -> None:
    nodes = start_cluster(node_factory, tmp_path, 5, mtls=True)
    majority, minority = nodes[:3], nodes[3:]
    home, writer = majority[0], minority[0]
    with home.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
    with writer.client() as client:
        client.get("/v1/mailboxes/tester")
    send_when_known(writer, "echo", "before", conversation="p")
    with writer.client() as client:
        assert [r["content"]["content"] for r in collect(client, "tester", 1)] == ["before"]
    wait_for(lambda: status(writer)["queuedWrites"] == 0, timeout=10, what="the first message to be acked")

    partition.cut([n.address for n in minority], [n.address for n in majority])
    wait_for(lambda: all(status(n)["readOnly"] for n in minority), timeout=30, what="the minority to go read-only")
    wait_for(lambda: all(states(m)[n.node_id] == "failed" for m in majority for n in minority), timeout=30,
             what="the majority to mark the minority failed")
    for node in majority:
        assert status(node)["status"] == "HEALTHY"
    assert status(writer)["status"] == "DEGRADED"
    with writer.client() as client:
        refused = client.post("/v1/agents", json={"id": "late", "wasm": base64.b64encode(agents["echo"]).decode()})
        assert refused.status_code == 503
        assert refused.json()["code"] == "read_only"
        assert "minority partition" in refused.json()["message"]
        for i in range(50):
            assert client.post("/v1/messages", json={
                "performative": "request", "sender": "tester", "receiver": "echo", "content": i,
                "conversation_id": "p"}).status_code == 202
    assert status(writer)["queuedWrites"] == 50
    # The runbook's view of it, on each side.
    detected = caxton(writer, "cluster", "detect-partition")
    assert detected.returncode == 3
    assert detected.stdout.splitlines()[0] == "WARNING: Network partition detected"
    assert f"Partition A: [{', '.join(sorted(n.node_id for n in minority))}] (minority)" in detected.stdout
    minority_status = caxton(writer, "cluster", "status").stdout
    assert "Status: DEGRADED (minority partition)" in minority_status
    assert "Operations: READ-ONLY" in minority_status and "Queued writes: 50" in minority_status
    assert "Status: HEALTHY (majority partition)" in caxton(home, "cluster", "status").stdout
    assert caxton(writer, "cluster", "ping", home.node_id).returncode == 3
    with home.client() as client:
        assert client.get("/v1/agents/echo").json()["handled"] == 1

    partition.heal()
    with writer.client() as client:
        replies = collect(client, "tester", 50, timeout=60)
    assert [r["content"]["content"] for r in replies] == list(range(50))
    with home.client() as client:
        assert client.get("/v1/agents/echo").json()["handled"] == 51
    wait_for(lambda: not status(writer)["readOnly"], timeout=20, what="the minority to be writable again")
    watched = caxton(writer, "cluster", "watch", "--timeout", "1").stdout
    assert re.search(r"\[INFO\] Partition healed: [345] of 5 members reachable \(quorum 3\), read-write again",
                     watched), watched
    for line in ("Replaying 50 queued messages", "Cluster synchronized: outbox empty, 50 messages replayed"):
        assert f"[INFO] {line}" in watched
    assert "merg" not in watched  # nothing is merged: the outbox is replayed
    assert caxton(writer, "cluster", "ping", home.node_id).returncode == 0
    wait_for(lambda: caxton(writer, "cluster", "verify").returncode == 0, timeout=20, what="cluster verify OK")
    assert caxton(home, "cluster", "detect-partition").stdout.startswith("No partition")
