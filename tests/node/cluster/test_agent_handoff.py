"""Moving an agent between nodes, copy then remove: the messages still queued for it on the
old node go to the copy (`DELETE /v1/agents/{id}?handoff=true`), none is dropped."""

from __future__ import annotations

from pathlib import Path

from tests.node.test_agents import collect, deploy
from tests.support.nodes import NodeFactory, start_cluster
from tests.support.waiting import wait_for


def test_queued_messages_follow_the_moved_agent(node_factory: NodeFactory, agents: dict[str, bytes],
                                                tmp_path: Path) -> None:
    a, b = start_cluster(node_factory, tmp_path, 2, mtls=True)
    with a.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        # No other node serves it yet: a handoff is refused, and the agent stays.
        refused = client.delete("/v1/agents/echo", params={"handoff": "true"})
        assert refused.status_code == 409 and refused.json()["code"] == "no_other_copy"
        assert client.post("/v1/agents/echo/suspend").status_code == 200  # its queue now holds
        client.get("/v1/mailboxes/tester")
        for i in range(50):
            assert client.post("/v1/messages", json={"performative": "request", "sender": "tester",
                                                     "receiver": "echo", "content": i}).status_code == 202
        assert client.get("/v1/queue").json()["agents"]["echo"] == 50
    with b.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
    with a.client() as client:
        wait_for(lambda: client.delete("/v1/agents/echo", params={"handoff": "true"}).status_code == 204,
                 timeout=15, what="a to see the copy on b through gossip and hand over")
        replies = collect(client, "tester", 50)
        assert sorted(r["content"]["content"] for r in replies) == list(range(50))
        assert client.get("/v1/dead-letters").json() == []
    with b.client() as client:
        assert client.get("/v1/agents/echo").json()["handled"] == 50
