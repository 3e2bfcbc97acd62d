"""A node told the cluster is hibernating keeps its queues through the preStop drain, and
finds them again when it starts on the same data directory."""

from __future__ import annotations

from tests.support.agents import agent, deploy, send
from tests.support.nodes import NodeFactory


def test_a_hibernating_node_keeps_its_queue_through_a_drain(node_factory: NodeFactory,
                                                            agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        assert client.post("/v1/agents/echo/suspend").status_code == 200
        for n in range(5):
            send(client, "echo", {"n": n})
        assert client.post("/v1/hibernate").json() == {"node": node.node_id, "hibernating": True}
        drained = client.post("/v1/queue/drain", json={"timeout": "1s"}).json()
        assert drained == {"before": 5, "processed": 0, "deadLettered": 0}
        assert agent(client, "echo")["queue"] == 5
        assert client.get("/v1/dead-letters").json() == []
    node.stop()
    node.start()
    with node.client() as client:
        assert agent(client, "echo")["queue"] == 5
        # Started again, it is not hibernating: a drain dead-letters what a suspended agent holds.
        assert client.post("/v1/queue/drain", json={"timeout": "1s"}).json()["deadLettered"] == 5
