"""One agent cannot stop the node or hold up the others (docs/agent-abi.md, "Isolation").

Real modules on a real node process: a busy agent is removed while it runs, a
loop and a WASI sleep run beside an echo agent, a table grows against the
store limits. Assertions are on order and outcome, never on elapsed time: each
hostile agent's deadline is long enough that "the echo answered before the
hostile agent's failure was counted" can only hold if the two ran side by side.
"""

from __future__ import annotations

import httpx
import wasmtime

from tests.support.agents import agent, collect, dead_letters, deploy, send
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.waiting import wait_for

# The echo's own deadline is not under test: well above what a busy machine's scheduler can take.
ECHO_DEADLINE = "1s"


def _running(client: httpx.Client, agent_id: str) -> bool:
    """The agent took its message off the queue and has not finished it."""
    state = agent(client, agent_id)
    return state["queue"] == 0 and state["failures"] == 0


def _echo_answers(client: httpx.Client, count: int = 20) -> None:
    for i in range(count):
        send(client, "echo", i, sender="echo-client")
    replies = collect(client, "echo-client", count, timeout=60)
    assert [r["content"]["content"] for r in replies] == list(range(count))


def _alive(node: NodeProcess) -> None:
    assert node.proc is not None and node.proc.poll() is None, node.log_file.read_text()[-3000:]


def test_deleting_a_busy_agent_waits_for_it_and_the_node_lives(
    node_factory: NodeFactory, agents: dict[str, bytes]
) -> None:
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "spinner", agents["hostile_loop"], deadline="3s").status_code == 201
        assert deploy(client, "echo", agents["echo"], deadline=ECHO_DEADLINE).status_code == 201
        send(client, "spinner", 1)
        wait_for(lambda: _running(client, "spinner"), timeout=10, what="the spinner to run its message")
        assert client.delete("/v1/agents/spinner").status_code == 204
        _alive(node)
        assert [a["id"] for a in client.get("/v1/agents").json()] == ["echo"]
        _echo_answers(client)
        # The same id can be deployed again at once, with a fresh instance.
        assert deploy(client, "spinner", agents["echo"]).status_code == 201
        send(client, "spinner", "again")
        assert collect(client, "tester", 1)[0]["content"]["content"] == "again"
    _alive(node)


def test_deleting_an_agent_with_a_backlog_dead_letters_the_rest(
    node_factory: NodeFactory, agents: dict[str, bytes]
) -> None:
    node = node_factory()
    with node.client() as client:
        # 300 x 50 ms of work: on a busy machine too, some are still queued when the DELETE arrives.
        assert deploy(client, "spinner", agents["hostile_loop"], deadline="50ms").status_code == 201
        assert deploy(client, "echo", agents["echo"], deadline=ECHO_DEADLINE).status_code == 201
        for i in range(300):
            send(client, "spinner", i)
        wait_for(lambda: agent(client, "spinner")["failures"] >= 5, timeout=30, what="the spinner to fail 5 times")
        assert client.delete("/v1/agents/spinner").status_code == 204
        _alive(node)
        _echo_answers(client)
        letters = [d for d in dead_letters(client, 1000) if d["message"]["receiver"] == "spinner"]
        reasons = [d["reason"] for d in letters]
        # Every message is accounted for: trapped at its deadline, or refused because the agent went.
        assert len(letters) == 300
        assert {r for r in reasons if r != "agent_removed"} == {"agent_failed: deadline exceeded"}
        assert "agent_removed" in reasons
    _alive(node)


def test_a_looping_agent_does_not_hold_up_the_others(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "spinner", agents["hostile_loop"], deadline="5s").status_code == 201
        assert deploy(client, "echo", agents["echo"], deadline=ECHO_DEADLINE).status_code == 201
        send(client, "spinner", 1)
        wait_for(lambda: _running(client, "spinner"), timeout=10, what="the spinner to run its message")
        _echo_answers(client)
        # Every echo reply came back while the spinner was still inside its one message.
        assert agent(client, "spinner")["failures"] == 0
        wait_for(lambda: agent(client, "spinner")["failures"] == 1, timeout=30, what="the spinner's deadline")
        assert [d["reason"] for d in dead_letters(client)] == ["agent_failed: deadline exceeded"]
    _alive(node)


def test_a_wasi_sleep_counts_against_the_deadline(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        # hostile_sleep asks poll_oneoff for 30 s; its deadline is 3 s.
        assert deploy(client, "sleeper", agents["hostile_sleep"], deadline="3s").status_code == 201
        assert deploy(client, "echo", agents["echo"], deadline=ECHO_DEADLINE).status_code == 201
        send(client, "sleeper", 1)
        wait_for(lambda: _running(client, "sleeper"), timeout=10, what="the sleeper to run its message")
        _echo_answers(client)
        assert agent(client, "sleeper")["failures"] == 0
        # Interrupted at its deadline, long before the 30 s it asked for.
        wait_for(lambda: agent(client, "sleeper")["failures"] == 1, timeout=20, what="the sleeper's deadline")
        assert [d["reason"] for d in dead_letters(client)] == ["agent_failed: deadline exceeded"]
        metrics = httpx.get(node.metrics_url).text
        assert 'caxton_agent_crashes_total{reason="deadline"} 1.0' in metrics
        # A sleep inside the deadline is an ordinary wait: the C ledger agent (usleep) answers.
        assert deploy(client, "ledger", agents["ledger"], deadline="2s").status_code == 201
        send(client, "ledger", {"seq": 7, "sleep_ms": 100})
        assert [r["content"] for r in collect(client, "tester", 1)] == [{"seq": 7}]
        assert agent(client, "ledger")["failures"] == 0
    _alive(node)


def test_tables_instances_and_memories_are_limited(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        # A deadline this long would let an unlimited table reach gigabytes; the limit stops it first.
        assert deploy(client, "tables", agents["hostile_tablebomb"], deadline="1s").status_code == 201
        send(client, "tables", None)
        wait_for(lambda: agent(client, "tables")["failures"] == 1, timeout=20, what="the table bomb to fail")
        [letter] = dead_letters(client)
        assert letter["reason"].startswith("agent_failed: unreachable"), letter["reason"]

        many_tables = "(module " + " ".join(f"(table {256} funcref)" for _ in range(5)) + _ABI + ")"
        two_memories = f"(module (memory 1) {_ABI})"
        big_table = f"(module (table 10000000 funcref) {_ABI})"
        for name, wat in (("five-tables", many_tables), ("two-memories", two_memories), ("big-table", big_table)):
            refused = deploy(client, name, bytes(wasmtime.wat2wasm(wat)))
            assert refused.status_code == 422, (name, refused.text)
            assert refused.json()["code"] == "init_failed", (name, refused.text)
        assert [a["id"] for a in client.get("/v1/agents").json()] == ["tables"]
    _alive(node)


_ABI = """(memory (export "memory") 1)
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle_message") (param i32 i32) (result i32) (i32.const 0))"""


def test_suspend_and_emergency_stop_return_once_nothing_runs(
    node_factory: NodeFactory, agents: dict[str, bytes]
) -> None:
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "spinner", agents["hostile_loop"], deadline="2s").status_code == 201
        send(client, "spinner", 1)
        send(client, "spinner", 2)
        wait_for(lambda: agent(client, "spinner")["queue"] == 1, timeout=10, what="the spinner to run message 1")
        assert client.post("/v1/agents/spinner/suspend").status_code == 200
        # The running message ended (at its deadline) before the suspension was answered; the next waits.
        state = agent(client, "spinner")
        assert (state["failures"], state["queue"], state["state"]) == (1, 1, "suspended")
        assert client.post("/v1/agents/spinner/resume").status_code == 200
        wait_for(lambda: agent(client, "spinner")["queue"] == 0, timeout=10, what="the spinner to run message 2")
        stopped = client.post("/v1/emergency/stop", json={})
        assert stopped.status_code == 200 and stopped.json()["suspended"] == ["spinner"]
        assert agent(client, "spinner")["failures"] == 2
    _alive(node)
