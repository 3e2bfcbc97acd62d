"""The counting load generator (tests/support/load.py) against a real node: it counts
every reply, and a message nobody answers is reported lost, not hidden."""

from __future__ import annotations

import base64

from tests.support.load import MessageLoad
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.waiting import wait_for


def _deploy(node: NodeProcess, agent_id: str, wasm: bytes) -> None:
    with node.client() as client:
        resp = client.post("/v1/agents", json={"id": agent_id, "wasm": base64.b64encode(wasm).decode(),
                                               "limits": {"deadline": "50ms"}})
        assert resp.status_code == 201, resp.text


def test_every_numbered_message_is_answered_once(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    for agent_id in ("echo-a", "echo-b"):
        _deploy(node, agent_id, agents["echo"])
    load = MessageLoad(lambda: {node.node_id: node.api}, node.token_file.read_text().strip(),
                       ["echo-a", "echo-b"], rate=200).start()
    wait_for(lambda: load.report().answered >= 400, timeout=60, what="400 answered messages")
    report = load.stop(drain_timeout=20)
    assert report.sent >= 400
    assert report.lost == 0, report.as_dict()
    assert report.answered == report.sent
    assert report.duplicated == 0 and report.reordered == 0
    assert report.p99_ms >= report.p50_ms > 0


def test_messages_nobody_answers_are_counted_lost(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    for agent_id in ("echo-a", "echo-b"):
        _deploy(node, agent_id, agents["echo"])
    load = MessageLoad(lambda: {node.node_id: node.api}, node.token_file.read_text().strip(),
                       ["echo-a", "echo-b"], rate=100, reply_timeout=1.0).start()
    wait_for(lambda: load.report().answered >= 50, timeout=60, what="50 answered messages")
    with node.client() as client:  # from now on, every second message has no receiver
        assert client.delete("/v1/agents/echo-b").status_code == 204
    wait_for(lambda: load.report().errors.get("send: HTTP 404", 0) >= 20, timeout=60,
             what="sends to the removed agent to be refused")
    report = load.stop(drain_timeout=3)
    assert report.lost > 0
    # Exactly the numbers that went to echo-b (n % 2 == 1) after it went, and they were retried.
    assert all(n % 2 == 1 for n in report.lost_numbers)
    assert report.answered + report.lost == report.sent
    assert report.retried > 0
