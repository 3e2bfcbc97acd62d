"""Retries on the peer channel: after lost acks (iptables drops the receiver's acks for real) the
receiver drops the repeats by message id, so every message is delivered exactly once; after a
queue_full refusal the retry is delivered, not mistaken for a repeat."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.node.cluster.test_cross_node import peer_counters, send_when_known
from tests.node.test_agents import collect, deploy
from tests.support.netfault import NetworkPartition
from tests.support.nodes import NodeFactory, NodeProcess, cluster_node, gossip_key, start_cluster, wait_all_alive
from tests.support.waiting import wait_for


def handled(node: NodeProcess, agent: str) -> int:
    with node.client() as client:
        count: int = client.get(f"/v1/agents/{agent}").json()["handled"]
    return count


def channel_open(client: NodeProcess, server: NodeProcess) -> bool:
    """Whether `client` holds an established peer-channel connection to `server`."""
    listing = subprocess.run(["ss", "-Htn", "state", "established", "src", client.address, "dst", server.address,
                              "dport", "=", ":7946"], capture_output=True, text=True, check=True).stdout
    return bool(listing.strip())


def queued(node: NodeProcess) -> int:
    with node.client() as client:
        count: int = client.get("/v1/cluster/status").json()["queuedWrites"]
    return count


def test_retries_after_lost_acks_deliver_exactly_once(node_factory: NodeFactory, agents: dict[str, bytes],
                                                      tmp_path: Path, partition: NetworkPartition) -> None:
    home, sender, _ = start_cluster(node_factory, tmp_path, 3, mtls=True)
    with home.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
    with sender.client() as client:
        client.get("/v1/mailboxes/tester")
    send_when_known(sender, "echo", -1)
    with sender.client() as client:
        assert len(collect(client, "tester", 1)) == 1

    # The frames still reach home (and echo handles them), but its acks never come back.
    partition.drop(home.address, sender.address, protocol="tcp", source_port=7946)
    with sender.client() as client:
        for i in range(20):
            assert client.post("/v1/messages", json={"performative": "request", "sender": "tester",
                                                     "receiver": "echo", "content": i}).status_code == 202
    # The sender waits for the ack of what it sent, so at least the first batch is delivered unacked.
    delivered_unacked = wait_for(lambda: handled(home, "echo") - 1, timeout=30,
                                 what="echo to handle a message whose ack is lost")
    assert queued(sender) == 20, "the sender must still hold every message: no ack arrived"
    # Lost long enough that the sender gives the connection up (TCP alone would otherwise
    # retransmit the acks after the heal), so it must resend on a new one.
    wait_for(lambda: not channel_open(sender, home), timeout=60, what="the sender to drop its connection")

    partition.heal()
    wait_for(lambda: queued(sender) == 0, timeout=60, what="the retries to be acked")
    with sender.client() as client:
        replies = collect(client, "tester", 20, timeout=30)
        extra = client.get("/v1/mailboxes/tester", params={"wait": 2}).json()
    assert sorted(r["content"]["content"] for r in replies) == list(range(20))
    assert extra == []
    assert handled(home, "echo") == 21  # the retries were not delivered again
    counters = peer_counters(home)
    assert counters["duplicate"] >= delivered_unacked, counters  # they were retried, and dropped as repeats
    assert counters["received"] == 21


def test_messages_refused_with_queue_full_are_retried_not_lost(node_factory: NodeFactory, agents: dict[str, bytes],
                                                               tmp_path: Path) -> None:
    key = gossip_key(tmp_path / "keys")
    home = cluster_node(node_factory, key, [], 2, start=False)
    home.extra_config["agents"] = {"queue_capacity": 2}
    home.start()
    sender = cluster_node(node_factory, key, [f"{home.address}:7946"], 2)
    wait_all_alive([home, sender])
    with home.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        assert client.post("/v1/agents/echo/suspend").status_code == 200  # its queue fills up
    with sender.client() as client:
        client.get("/v1/mailboxes/tester")
    send_when_known(sender, "echo", 0)
    with sender.client() as client:
        for i in range(1, 6):
            assert client.post("/v1/messages", json={"performative": "request", "sender": "tester",
                                                     "receiver": "echo", "content": i}).status_code == 202
    # Two fit; the rest are refused with queue_full and must stay queued on the sender.
    wait_for(lambda: queued(sender) == 4, timeout=30, what="the sender to hold what did not fit")
    with home.client() as client:
        assert client.get("/v1/agents/echo").json()["queue"] == 2
        assert client.post("/v1/agents/echo/resume").status_code == 200
    with sender.client() as client:
        replies = collect(client, "tester", 6, timeout=60)
    assert [r["content"]["content"] for r in replies] == list(range(6))
    assert handled(home, "echo") == 6
