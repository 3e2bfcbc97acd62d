"""Real Wasm agents on a real node process: delivery, limits and hostile modules."""

from __future__ import annotations

import base64
import signal
from collections import defaultdict
from typing import Any

import httpx

from tests.support.agents import collect, send
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.waiting import wait_for


def deploy(client: httpx.Client, agent_id: str, wasm: bytes, **limits: Any) -> httpx.Response:
    # Deadlines are wall-clock: the 10 ms default would be a timing threshold on a busy test machine.
    limits.setdefault("deadline", "1s")
    return client.post("/v1/agents", json={
        "id": agent_id, "wasm": base64.b64encode(wasm).decode(), "limits": limits,
    })


def dead_letters(client: httpx.Client) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = client.get("/v1/dead-letters").json()
    return result


def test_echo_answers_ten_thousand_messages_in_order(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        conversations = [f"conv-{i}" for i in range(10)]
        for seq in range(1000):
            for conv in conversations:
                send(client, "echo", {"seq": seq}, conversation=conv)
        replies = collect(client, "tester", 10_000)
    assert len(replies) == 10_000
    by_conversation: dict[str, list[int]] = defaultdict(list)
    for reply in replies:
        assert reply["performative"] == "inform"
        assert reply["sender"] == "echo"
        assert reply["in_reply_to"] == ""
        by_conversation[reply["conversation_id"]].append(reply["content"]["content"]["seq"])
    assert sorted(by_conversation) == conversations
    for seqs in by_conversation.values():
        assert seqs == list(range(1000))


def test_c_counter_agent_counts(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "counter", agents["counter"]).status_code == 201
        for _ in range(5):
            send(client, "counter", None)
        counts = [r["content"]["count"] for r in collect(client, "tester", 5)]
    assert counts == [1, 2, 3, 4, 5]
    assert "counter ready" in node.log_file.read_text()
    # The module as deployed, for moving the agent to another node.
    with node.client() as client:
        module = client.get("/v1/agents/counter/module")
        assert module.status_code == 200 and module.content == agents["counter"]
        assert module.headers["content-type"] == "application/wasm"
        assert client.get("/v1/agents/nobody/module").json()["code"] == "agent_not_found"


def test_infinite_loop_is_stopped_at_its_deadline(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "spinner", agents["hostile_loop"], deadline="20ms").status_code == 201
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        for i in range(3):
            send(client, "spinner", i)
        for i in range(20):
            send(client, "echo", i)
        assert len(collect(client, "tester", 20)) == 20
        letters = wait_for(lambda: [d for d in dead_letters(client) if d["message"]["receiver"] == "spinner"]
                           if len(dead_letters(client)) >= 3 else None, timeout=10, what="3 dead letters")
        assert all("deadline exceeded" in d["reason"] for d in letters)
        spinner = client.get("/v1/agents/spinner").json()
        assert spinner["failures"] == 3
        # The agent was restarted after each trap and is still deployed.
        assert spinner["state"] == "running"
    metrics = httpx.get(node.metrics_url).text
    assert 'caxton_agent_crashes_total{reason="deadline"} 3.0' in metrics


def test_memory_bomb_fails_cleanly_and_the_node_lives(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "bomb", agents["hostile_membomb"], memory="2Mi").status_code == 201
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        send(client, "bomb", None)
        wait_for(lambda: client.get("/v1/agents/bomb").json()["failures"] == 1, timeout=10, what="bomb trapped")
        bomb = client.get("/v1/agents/bomb").json()
        assert bomb["memoryBytes"] <= 2 * 2**20
        send(client, "echo", "still here")
        assert collect(client, "tester", 1)[0]["content"]["content"] == "still here"
    assert node.proc is not None and node.proc.poll() is None


def _node_survives(node: NodeProcess, client: httpx.Client) -> None:
    assert node.proc is not None and node.proc.poll() is None
    assert client.get("/v1/agents").status_code == 200


def test_hostile_modules_are_refused_or_contained(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        refused = deploy(client, "sneaky", agents["hostile_forbidden_import"])
        assert refused.status_code == 422
        assert refused.json()["code"] == "forbidden_import"
        assert "env.system" in refused.json()["message"]
        garbage = deploy(client, "garbage", b"\0asm not really")
        assert garbage.status_code == 422
        assert garbage.json()["code"] == "invalid_module"
        assert [a["id"] for a in client.get("/v1/agents").json()] == []

        assert deploy(client, "trapper", agents["hostile_trap"]).status_code == 201
        assert deploy(client, "shouter", agents["hostile_oversized"]).status_code == 201
        send(client, "trapper", None)
        send(client, "shouter", None)
        wait_for(lambda: any("unreachable" in d["reason"] for d in dead_letters(client)), timeout=10,
                 what="the trap in the dead-letter queue")
        wait_for(lambda: "send_message refused: 16777216 bytes" in node.log_file.read_text(), timeout=10,
                 what="the oversized send to be refused")
        assert client.get("/v1/agents/shouter").json()["failures"] == 0

        too_big = client.post("/v1/messages", content=b'{"performative":"inform","sender":"t","receiver":"trapper",'
                              b'"content":"' + b"x" * 70_000 + b'"}')
        assert too_big.status_code == 413
        malformed = client.post("/v1/messages", content=b"{not json")
        assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_message"
        unknown = client.post("/v1/messages", json={"performative": "shout", "sender": "t", "receiver": "trapper"})
        assert unknown.status_code == 400 and "performative" in unknown.json()["message"]
        _node_survives(node, client)


def test_unauthenticated_calls_get_401_and_change_nothing(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    payload = {"id": "echo", "wasm": base64.b64encode(agents["echo"]).decode()}
    with node.client(token=False) as anonymous:
        calls = [
            anonymous.post("/v1/agents", json=payload),
            anonymous.get("/v1/agents"),
            anonymous.post("/v1/messages", json={"performative": "request", "sender": "a", "receiver": "echo"}),
            anonymous.post("/v1/emergency/stop", json={}),
            anonymous.get("/v1/queue"),
            anonymous.post("/v1/agents", json=payload, headers={"Authorization": "Bearer wrong-token-123456"}),
        ]
        assert [c.status_code for c in calls] == [401] * len(calls)
        assert calls[0].json() == {"code": "unauthorized", "message": "missing or wrong bearer token"}
        assert anonymous.get("/healthz").status_code == 200
    with node.client() as client:
        assert client.get("/v1/agents").json() == []


def test_restarted_node_restores_agents_and_undelivered_messages(
    node_factory: NodeFactory, agents: dict[str, bytes]
) -> None:
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        assert deploy(client, "counter", agents["counter"]).status_code == 201
        assert client.post("/v1/agents/echo/suspend").status_code == 200
        for i in range(25):
            send(client, "echo", i, conversation="kept")
    assert node.stop() == 0
    node.start()
    with node.client() as client:
        listed = {a["id"]: a for a in client.get("/v1/agents").json()}
        assert set(listed) == {"echo", "counter"}
        assert listed["echo"]["state"] == "suspended"
        assert listed["echo"]["queue"] == 25
        client.get("/v1/mailboxes/tester")  # the client is back and listening
        assert client.post("/v1/agents/echo/resume").status_code == 200
        replies = collect(client, "tester", 25)
    assert [r["content"]["content"] for r in replies] == list(range(25))


def test_at_least_once_keeps_acknowledged_messages_through_a_crash(
    node_factory: NodeFactory, agents: dict[str, bytes]
) -> None:
    node = node_factory(agents={"delivery": "at-least-once"})
    with node.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        assert client.post("/v1/agents/echo/suspend").status_code == 200
        for i in range(20):
            send(client, "echo", i)
    node.stop(signal.SIGKILL)  # no graceful flush: only what was acknowledged durably survives
    node.start()
    with node.client() as client:
        assert client.get("/v1/agents/echo").json()["queue"] == 20
        client.get("/v1/mailboxes/tester")
        client.post("/v1/agents/echo/resume")
        assert [r["content"]["content"] for r in collect(client, "tester", 20)] == list(range(20))
