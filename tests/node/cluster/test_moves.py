"""The one move path (`caxton_operator.rebalance.move_agent`: freeze, copy with the snapshot,
remove with handoff) between real node processes: under counted load nothing is lost, a
stateful agent keeps its state, and an abandoned move gives the agent back to its node."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from caxton_operator.nodeapi import NodeApi, NodeUnavailable
from caxton_operator.rebalance import move_agent

from tests.support.agents import collect, dead_letters, deploy, send
from tests.support.load import MessageLoad
from tests.support.nodes import NodeFactory, NodeProcess, start_cluster
from tests.support.waiting import wait_for

log = logging.getLogger(__name__)


class DirectNodes(NodeApi):
    """The operator's node API, reaching test nodes at their own addresses instead of the pod proxy."""

    def __init__(self, nodes: list[NodeProcess]) -> None:
        self.nodes = {n.node_id: n for n in nodes}
        self.timeout = 10.0

    def call(self, pod: str, method: str, path: str, *, json: Any = None,
             timeout: float | None = None) -> httpx.Response:
        with self.nodes[pod].client() as client:
            resp = client.request(method, path, json=json, timeout=timeout or self.timeout)
        if resp.status_code >= 300:
            code = resp.json().get("code", "") if resp.headers.get("content-type", "").startswith(
                "application/json") else ""
            raise NodeUnavailable(f"{pod}: {method} {path}: HTTP {resp.status_code} {resp.text[:200]}",
                                  resp.status_code, code)
        return resp


def described(node: NodeProcess, agent_id: str) -> dict[str, Any]:
    with node.client() as client:
        result: dict[str, Any] = client.get(f"/v1/agents/{agent_id}").json()
    return result


def test_moves_under_load_lose_nothing(node_factory: NodeFactory, agents: dict[str, bytes],
                                       tmp_path: Path) -> None:
    nodes = start_cluster(node_factory, tmp_path, 3, mtls=True)
    a, b, c = nodes
    ids = [f"echo-{i}" for i in range(6)]
    with a.client() as client:
        for agent_id in ids:
            assert deploy(client, agent_id, agents["echo"]).status_code == 201
    for node in (b, c):
        wait_for(lambda node=node: states_know(node, ids),  # type: ignore[misc]
                 timeout=20, what=f"{node.node_id} to locate the agents")
    api = DirectNodes(nodes)
    load = MessageLoad(lambda: {n.node_id: n.api for n in nodes}, a.token_file.read_text().strip(), ids,
                       rate=150, reply_timeout=5.0).start()
    moves = []
    try:
        wait_for(lambda: load.report().answered >= 100, timeout=60, what="the load to get going")
        # Every agent moves twice while messages keep coming through all three nodes.
        for source, target in ((a, b), (b, c)):
            for agent_id in ids:
                moves.append(move_agent(api, described(source, agent_id), source.node_id, target.node_id))
            wait_for(lambda: load.report().answered >= 100 + 150 * len(moves) // 6, timeout=60,
                     what="replies after the moves")
    finally:
        report = load.stop(drain_timeout=60)
    log.info("moves under load: %d moves, %s", len(moves), report.as_dict())
    print(f"moves under load: {len(moves)} moves, {report.as_dict()}")
    assert len(moves) == 12
    # Nothing lost, and nothing saved only by the client's resends: the moves themselves drop nothing.
    assert report.sent > 500 and report.lost == 0 and report.dropped == 0, report.as_dict()
    for agent_id in ids:  # every agent ended where it was sent last, and only there
        assert described(c, agent_id)["node"] == c.node_id
        for node in (a, b):
            with node.client() as client:
                assert client.get(f"/v1/agents/{agent_id}").status_code == 404
    for node in nodes:
        with node.client() as client:
            assert dead_letters(client) == [], node.node_id


def states_know(node: NodeProcess, ids: list[str]) -> bool:
    """Whether gossip has told `node` that some member serves every agent in `ids`."""
    with node.client() as client:
        members = client.get("/v1/cluster/members").json()
    return sum(m.get("agents", 0) for m in members if m["id"] != node.node_id) >= len(ids)


def test_a_stateful_agent_keeps_its_state_and_queued_messages_travel(
        node_factory: NodeFactory, agents: dict[str, bytes], tmp_path: Path) -> None:
    a, b = start_cluster(node_factory, tmp_path, 2, mtls=True)
    api = DirectNodes([a, b])
    with a.client() as client:
        assert deploy(client, "counter", agents["counter"]).status_code == 201
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        client.get("/v1/mailboxes/tester")
        for _ in range(5):
            send(client, "counter", None)
        assert [r["content"]["count"] for r in collect(client, "tester", 5)] == [1, 2, 3, 4, 5]
    with b.client() as client:
        client.get("/v1/mailboxes/tester")
    move_agent(api, described(a, "counter"), a.node_id, b.node_id)
    with b.client() as client:
        send(client, "counter", None)
        assert [r["content"]["count"] for r in collect(client, "tester", 1)] == [6]
    # A module without the snapshot pair starts afresh where it goes (docs/agent-abi.md).
    frozen = api.json(a.node_id, "POST", "/v1/agents/echo/freeze", json={"lease": "30s"})
    assert frozen["keepsState"] is False and frozen["state"] is None
    with a.client() as client:
        client.get("/v1/mailboxes/on-a")  # a mailbox only a has: the replies must cross back
        for i in range(20):  # frozen: these wait on a, and go with the agent
            send(client, "echo", i, sender="on-a")
        assert client.get("/v1/queue").json()["agents"]["echo"] == 20
    with a.client() as client:
        assert client.get("/v1/agents/echo").json()["moving"] is True
    move_agent(api, described(a, "echo"), a.node_id, b.node_id)
    with a.client() as client:
        replies = collect(client, "on-a", 20)
        assert sorted(r["content"]["content"] for r in replies) == list(range(20))
        assert dead_letters(client) == []
    assert described(b, "echo")["handled"] == 20


def test_an_abandoned_move_gives_the_agent_back(node_factory: NodeFactory, agents: dict[str, bytes],
                                                tmp_path: Path) -> None:
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        client.get("/v1/mailboxes/tester")
        assert client.post("/v1/agents/echo/freeze", json={"lease": "2s"}).status_code == 200
        send(client, "echo", "held")
        time.sleep(0.5)
        assert client.get("/v1/agents/echo").json()["handled"] == 0  # frozen: it does not run here
        replies = collect(client, "tester", 1, timeout=30)  # the lease ran out: it runs again
        assert [r["content"]["content"] for r in replies] == ["held"]
        assert client.get("/v1/agents/echo").json()["moving"] is False
        bad = client.post("/v1/agents/echo/freeze", json={"lease": "soon"})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_request"
        assert client.post("/v1/agents/nobody/freeze").status_code == 404


@pytest.mark.parametrize("state", ["not base64!", ""])
def test_a_deploy_with_a_state_the_module_cannot_take_is_refused(node_factory: NodeFactory,
                                                                 agents: dict[str, bytes], state: str) -> None:
    import base64
    node = node_factory()
    with node.client() as client:
        body = {"id": "e", "wasm": base64.b64encode(agents["echo"]).decode(), "state": state}
        resp = client.post("/v1/agents", json=body)
        if state:
            assert resp.status_code == 400 and resp.json()["code"] == "invalid_state"
        else:  # well-formed, but echo has no agent_restore: refused, and nothing is left behind
            assert resp.status_code == 422 and resp.json()["code"] == "restore_unsupported"
        assert client.get("/v1/agents").json() == []
