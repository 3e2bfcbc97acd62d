"""What a node refuses or bounds, on real node processes: a full agent queue (429 queue_full,
nothing lost), the fuel budget, the client mailbox cap, and every call when it has no token file."""

from __future__ import annotations

from pathlib import Path

import httpx
from caxton_node.messages import Message
from caxton_node.metrics import NodeMetrics
from caxton_node.routing.mailboxes import CAPACITY as MAILBOX_CAPACITY
from caxton_node.routing.router import Router
from caxton_node.store import Store

from tests.node.test_agents import collect, dead_letters, deploy, send
from tests.support.nodes import NodeFactory
from tests.support.waiting import wait_for


def test_a_full_queue_answers_429_and_loses_nothing(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory(agents={"queue_capacity": 4})
    with node.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        assert client.post("/v1/agents/echo/suspend").status_code == 200  # nothing drains the queue
        for i in range(4):
            send(client, "echo", i)
        refused = client.post("/v1/messages", json={"performative": "request", "sender": "tester",
                                                    "receiver": "echo", "content": 4})
        assert refused.status_code == 429
        assert refused.json() == {"code": "queue_full", "message": "queue of agent echo is full (4 messages)"}
        assert client.post("/v1/agents/echo/resume").status_code == 200
        replies = collect(client, "tester", 4)
        assert [r["content"]["content"] for r in replies] == [0, 1, 2, 3]
        send(client, "echo", 4)  # the sender's retry, once there is room
        assert [r["content"]["content"] for r in collect(client, "tester", 1)] == [4]
        assert dead_letters(client) == []


def test_fuel_budget_stops_a_runaway_handler(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        # A generous deadline, so the fuel is what stops it.
        assert deploy(client, "spinner", agents["hostile_loop"], fuel=1_000_000, deadline="60s").status_code == 201
        assert deploy(client, "echo", agents["echo"], fuel=1_000_000).status_code == 201
        send(client, "spinner", "spin")
        send(client, "echo", "still here")
        assert [r["content"]["content"] for r in collect(client, "tester", 1)] == ["still here"]
        letters = wait_for(lambda: dead_letters(client), timeout=30, what="the spinner's message dead-lettered")
        assert [d["message"]["receiver"] for d in letters] == ["spinner"]
        assert "fuel exhausted" in letters[0]["reason"]
        assert client.get("/v1/agents/spinner").json()["failures"] == 1
    metrics = httpx.get(node.metrics_url).text
    assert 'caxton_agent_crashes_total{reason="fuel"} 1.0' in metrics
    assert 'caxton_agent_crashes_total{reason="deadline"} 0.0' in metrics


def test_a_client_mailbox_keeps_the_newest_messages_up_to_its_cap(tmp_path: Path) -> None:
    # In process (a real router and store): a hundred thousand HTTP calls would prove nothing more.
    store = Store(tmp_path)
    router = Router(store, NodeMetrics(), max_message_bytes=65536)
    try:
        router.open_mailbox("client")
        for i in range(MAILBOX_CAPACITY + 5):
            router.route(Message(performative="inform", sender="agent", receiver="client", conversation_id="c",
                                 content=i))
        taken = router.take_mailbox("client", MAILBOX_CAPACITY + 100)
        assert len(taken) == MAILBOX_CAPACITY
        assert taken[0].content == 5 and taken[-1].content == MAILBOX_CAPACITY + 4  # the oldest five dropped
    finally:
        router.stop()
        store.close()


def test_without_a_token_file_every_call_is_refused(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory(start=False)
    node.extra_config["security"] = {"api": {"token_file": None}}
    node.start()
    assert "every API call will be refused with 401" in node.log_file.read_text()
    for headers in ({}, {"Authorization": f"Bearer {node.token_file.read_text().strip()}"},
                    {"Authorization": "Basic YTpi"}, {"X-Caxton-Token": "anything-at-all-1234"}):
        with httpx.Client(base_url=node.api, headers=headers, timeout=30) as client:
            calls = [client.get("/v1/agents"), client.get("/v1/config"), client.get("/v1/cluster/status"),
                     client.post("/v1/agents", json={"id": "echo", "wasm": ""}),
                     client.post("/v1/messages", json={"performative": "request", "sender": "a", "receiver": "b"})]
            assert [c.status_code for c in calls] == [401] * len(calls), headers
    assert httpx.get(f"{node.api}/healthz").status_code == 200  # probes stay open
