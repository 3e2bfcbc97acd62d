"""What a node keeps grows with what it is asked to keep, never with traffic (docs/delivery.md).

Dead letters are bounded per agent (count, rate of what agents send, age), an
agent's log lines per message and per second, and the module cache holds only
the modules of deployed agents. Each test drives a real hostile module or a
stream of refused deploys and then looks at what is on disk.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import wasmtime

from tests.support.agents import agent, deploy, send
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.waiting import wait_for

DEFAULT_DEAD_LETTERS_PER_AGENT = 1000  # agents.dead_letters_per_agent


def _metric(node: NodeProcess, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", httpx.get(node.metrics_url).text, re.MULTILINE)
    assert match, f"{name} not published"
    return float(match.group(1))


def _letters_of(client: httpx.Client, agent_id: str) -> list[dict[str, Any]]:
    letters: list[dict[str, Any]] = client.get("/v1/dead-letters", params={"limit": 10_000}).json()
    return [d for d in letters if agent_id in (d["message"]["sender"], d["message"]["receiver"])]


def test_a_sending_flood_keeps_a_bounded_number_of_dead_letters(
    node_factory: NodeFactory, agents: dict[str, bytes]
) -> None:
    node = node_factory()
    with node.client() as client:
        # One message: the agent sends to an unknown receiver in a loop for a whole second.
        assert deploy(client, "flooder", agents["hostile_flood"], deadline="1s").status_code == 201
        send(client, "flooder", None)
        wait_for(lambda: agent(client, "flooder")["failures"] == 1, timeout=30, what="the flood's deadline")
        letters = _letters_of(client, "flooder")
        assert len(letters) <= DEFAULT_DEAD_LETTERS_PER_AGENT
        # Why the agent failed is kept: only what it sent is cut.
        assert letters[0]["reason"] == "agent_failed: deadline exceeded"
        assert {d["reason"] for d in letters[1:]} == {"unknown_receiver"}
    assert _metric(node, "caxton_dead_letters_stored") == len(letters)
    assert _metric(node, 'caxton_dead_letters_discarded_total{why="rate"}') > 0


def test_dead_letters_are_pruned_by_count_and_age(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory(agents={"dead_letters_per_agent": 20, "dead_letter_max_age": "3s"})
    with node.client() as client:
        assert deploy(client, "trapper", agents["hostile_trap"]).status_code == 201
        for i in range(50):
            send(client, "trapper", i)
        wait_for(lambda: agent(client, "trapper")["failures"] == 50, timeout=30, what="50 traps")
        letters = _letters_of(client, "trapper")
        # The newest 20 are kept.
        assert [d["message"]["content"] for d in letters] == list(range(49, 29, -1))
        assert _metric(node, 'caxton_dead_letters_discarded_total{why="count"}') == 30
        wait_for(lambda: not _letters_of(client, "trapper"), timeout=30, what="dead letters to expire")
    assert _metric(node, 'caxton_dead_letters_discarded_total{why="age"}') == 20
    assert _metric(node, "caxton_dead_letters_stored") == 0


def test_an_agent_cannot_flood_the_node_log(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        # Each message logs 4 KiB lines in a loop until its deadline.
        assert deploy(client, "chatter", agents["hostile_chatter"], deadline="200ms").status_code == 201
        for i in range(3):
            send(client, "chatter", i)
        wait_for(lambda: agent(client, "chatter")["failures"] == 3, timeout=30, what="3 deadlines")
        text = node.log_file.read_text()
        lines = [line for line in text.splitlines() if line.endswith("x" * 64) and "[agent chatter]" in line]
        assert len(lines) <= 3 * 16  # agents.log_lines_per_message
        dropped = agent(client, "chatter")["logLinesDropped"]
    assert dropped > 0
    assert "log line(s) dropped" in text
    assert _metric(node, "caxton_agent_log_lines_dropped_total") == dropped
    assert node.log_file.stat().st_size < 1 << 20


def _refused_variants(count: int) -> list[bytes]:
    """Valid modules, each different, that the node compiles and then refuses: agent_init traps."""
    return [bytes(wasmtime.wat2wasm(f"""(module
  (memory (export "memory") 1)
  (data (i32.const 0) "variant {i}")
  (func (export "caxton_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "handle_message") (param i32 i32) (result i32) (i32.const 0))
  (func (export "agent_init") unreachable))""")) for i in range(count)]


def _module_files(node: NodeProcess) -> list[str]:
    data = Path(node.root / "data")
    return sorted(p.name for d in (data / "cache", data / "modules") for p in d.iterdir())


def test_the_module_cache_holds_only_deployed_modules(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        for i, wasm in enumerate(_refused_variants(20)):
            refused = deploy(client, f"refused-{i}", wasm)
            assert refused.status_code == 422 and refused.json()["code"] == "init_failed", refused.text
        assert _module_files(node) == []

        assert deploy(client, "a", agents["echo"]).status_code == 201
        assert deploy(client, "b", agents["echo"]).status_code == 201
        assert deploy(client, "c", agents["counter"]).status_code == 201
        assert len(_module_files(node)) == 4  # two modules, each stored and compiled
        assert client.delete("/v1/agents/a").status_code == 204
        assert client.delete("/v1/agents/c").status_code == 204
        assert len(_module_files(node)) == 2  # b still uses the echo module
        kept = _module_files(node)
        send(client, "b", "still here")
    assert node.stop() == 0
    node.start()
    assert _module_files(node) == kept
    with node.client() as client:
        assert client.delete("/v1/agents/b").status_code == 204
        assert _module_files(node) == []
