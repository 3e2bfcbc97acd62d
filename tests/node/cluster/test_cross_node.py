"""Messages between agents on different nodes, over the mTLS peer channel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.node.test_agents import collect, deploy
from tests.support.nodes import NodeFactory, NodeProcess, cluster_node, gossip_key, start_cluster, states
from tests.support.waiting import wait_for


def send_when_known(node: NodeProcess, receiver: str, content: Any, conversation: str = "x") -> None:
    """Retries while gossip has not yet told `node` where `receiver` lives."""
    message = {"performative": "request", "sender": "tester", "receiver": receiver, "content": content,
               "conversation_id": conversation}
    with node.client() as client:
        wait_for(lambda: client.post("/v1/messages", json=message).status_code == 202, timeout=15,
                 what=f"{node.node_id} to route to {receiver}")


def peer_counters(node: NodeProcess) -> dict[str, int]:
    """caxton_peer_messages_total by direction, as the node's metrics endpoint reports it."""
    found = dict.fromkeys(("sent", "received", "duplicate"), 0)
    for line in httpx.get(node.metrics_url).text.splitlines():
        if line.startswith("caxton_peer_messages_total{"):
            direction = line.split('direction="', 1)[1].split('"', 1)[0]
            found[direction] = int(float(line.rsplit(" ", 1)[1]))
    return found


def test_agents_answer_across_nodes_over_mtls(node_factory: NodeFactory, agents: dict[str, bytes],
                                              tmp_path: Path) -> None:
    a, b, _ = start_cluster(node_factory, tmp_path, 3, mtls=True)
    with a.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
    with b.client() as client:
        client.get("/v1/mailboxes/tester")  # open b's mailbox so replies can find their way back
    send_when_known(b, "echo", 0)
    with b.client() as client:
        for i in range(1, 200):
            assert client.post("/v1/messages", json={
                "performative": "request", "sender": "tester", "receiver": "echo", "content": i,
                "conversation_id": "x"}).status_code == 202
        replies = collect(client, "tester", 200)
    assert [r["content"]["content"] for r in replies] == list(range(200))
    assert {r["sender"] for r in replies} == {"echo"}
    with a.client() as client:
        assert client.get("/v1/agents/echo").json()["handled"] == 200
    with b.client() as client:
        assert client.get("/v1/agents/echo").status_code == 404  # echo lives on a only
    # Every request really crossed b -> a over the peer channel, and every reply a -> b.
    assert peer_counters(b) == {"sent": 200, "received": 200, "duplicate": 0}
    assert peer_counters(a) == {"sent": 200, "received": 200, "duplicate": 0}
    metrics = httpx.get(b.metrics_url).text
    assert 'caxton_messages_routed_total{destination="remote"} 200.0' in metrics
    assert 'caxton_messages_routed_total{destination="local"} 0.0' in metrics  # nothing stayed on b


def test_node_with_a_foreign_ca_cannot_join_or_deliver(node_factory: NodeFactory, agents: dict[str, bytes],
                                                       tmp_path: Path) -> None:
    a, _ = start_cluster(node_factory, tmp_path, 2, mtls=True)
    with a.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
    # Same gossip key, but a certificate from another CA: the join over mTLS is refused.
    rogue = cluster_node(node_factory, gossip_key(tmp_path / "keys"), [f"{a.address}:7946"], 3,
                         ca_dir=tmp_path / "rogue-ca")
    # It retries every second: refused twice means it has really tried, not that we looked too early.
    wait_for(lambda: a.log_file.read_text().count("refused peer connection") >= 2, timeout=30,
             what="the member to refuse the rogue's TLS handshake twice")
    assert rogue.node_id not in states(a)
    assert set(states(rogue)) == {rogue.node_id}
    with rogue.client() as client:
        refused = client.post("/v1/messages", json={"performative": "request", "sender": "tester",
                                                    "receiver": "echo", "content": "let me in"})
        assert refused.status_code == 404
    with a.client() as client:
        assert client.get("/v1/agents/echo").json()["handled"] == 0
