"""The cluster-wide tables from each node's answer: node order kept, an unanswered node
keeps its row, totals add up (pure functions; the e2e runs them on a live cluster)."""

from __future__ import annotations

from typing import Any

from caxton_cli.client import Answer
from caxton_cli.errors import CommandError
from caxton_cli.node_commands import memories, queues


def memory(node: str, used: int, limit: int, agents: int, rss: int) -> dict[str, Any]:
    return {"node": node, "agentMemoryBytes": used, "agentMemoryLimitBytes": limit, "agents": agents,
            "processRssBytes": rss}


def test_memory_rows_and_totals() -> None:
    view = memories([Answer("demo-0", memory("demo-0", 1024, 4096, 2, 2**20)),
                     Answer("demo-1", error=CommandError("cannot reach demo-1", 2)),
                     Answer("demo-2", memory("demo-2", 2048, 4096, 1, 2**20))])
    assert list(view.headers) == ["NODE", "USED", "LIMIT", "AGENTS", "RSS"]
    assert [list(r) for r in view.rows] == [
        ["demo-0", "1.0KiB", "4.0KiB", 2, "1.0MiB"],
        ["demo-1", "-", "-", "-", "unreachable"],
        ["demo-2", "2.0KiB", "4.0KiB", 1, "1.0MiB"],
        ["TOTAL", "3.0KiB", "8.0KiB", 3, "2.0MiB"],
    ]
    assert view.data["total"] == {"agentMemoryBytes": 3072, "agentMemoryLimitBytes": 8192, "agents": 3,
                                  "processRssBytes": 2**21}
    assert [n["node"] for n in view.data["nodes"]] == ["demo-0", "demo-2"]


def test_queue_rows_totals_and_backlog() -> None:
    def stats(depth: int, dead: int, agents: dict[str, int], circuit: bool = False) -> dict[str, Any]:
        return {"depth": depth, "dead_letters": dead, "agents": agents, "mailboxes": {}, "circuit_open": circuit}

    view = queues([Answer("demo-0", stats(5, 1, {"a": 5, "b": 0})), Answer("demo-1", stats(12, 0, {"c": 12}, True)),
                   Answer("demo-2", error=CommandError("cannot reach demo-2", 2))])
    assert view.text is not None
    table, backlog = view.text.split("\n\n")
    assert [line.split() for line in table.splitlines()] == [
        ["NODE", "DEPTH", "DEAD-LETTERS", "CIRCUIT-BREAKER"], ["demo-0", "5", "1", "closed"],
        ["demo-1", "12", "0", "OPEN"], ["demo-2", "-", "-", "unreachable"], ["TOTAL", "17", "1"]]
    assert [line.split() for line in backlog.splitlines()] == [["NODE", "AGENT", "DEPTH"], ["demo-1", "c", "12"],
                                                               ["demo-0", "a", "5"]]
    assert view.data["total"] == {"depth": 17, "dead_letters": 1}
    assert view.data["unreachable"] == {"demo-2": "cannot reach demo-2"}
