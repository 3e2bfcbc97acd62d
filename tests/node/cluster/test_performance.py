"""`caxton cluster performance`: "no data" when nothing was measured, never a pass; with data,
routing and gossip round trips as distributions over many samples, not the last probe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.test_direct_mode import caxton
from tests.node.test_agents import collect, deploy, send
from tests.support.nodes import NodeFactory, NodeProcess, start_cluster
from tests.support.waiting import wait_for


def performance(node: NodeProcess) -> dict[str, Any]:
    result = caxton(node, "cluster", "performance", "-o", "json")
    assert result.returncode == 0, result.stderr
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def test_performance_says_no_data_when_nothing_was_measured(node_factory: NodeFactory) -> None:
    node = node_factory()  # a single node: no gossip, and no message routed yet
    table = caxton(node, "cluster", "performance")
    assert table.returncode == 0, table.stderr
    rows = {line.split("  ")[0]: line for line in table.stdout.splitlines()[1:]}
    assert "no data (0 messages)" in rows["Message routing P99"]
    assert "no data (0 probes)" in rows["Gossip round trip P50"]
    assert "no data (0 probes)" in rows["Gossip round trip P99"]
    assert "OK" not in table.stdout
    figures = performance(node)
    assert figures["routingP99Ms"] is None and figures["gossipRttP99Ms"] is None
    assert figures["messagesObserved"] == 0 and figures["gossipProbesObserved"] == 0


def test_performance_reports_distributions_once_measured(node_factory: NodeFactory, agents: dict[str, bytes],
                                                         tmp_path: Path) -> None:
    node = start_cluster(node_factory, tmp_path, 3)[0]
    with node.client() as client:
        assert deploy(client, "echo", agents["echo"], deadline="5s").status_code == 201
        for i in range(20):
            send(client, "echo", i)
        assert len(collect(client, "tester", 20)) == 20
    # Probes every 0.5 s: a distribution needs more than the last one.
    figures = wait_for(lambda: (lambda f: f if f["gossipProbesObserved"] >= 8 else None)(performance(node)),
                       timeout=30, what="eight gossip probes")
    assert figures["messagesObserved"] >= 20
    assert 0 < figures["routingP50Ms"] <= figures["routingP99Ms"]
    assert 0 < figures["gossipRttP50Ms"] <= figures["gossipRttP90Ms"] <= figures["gossipRttP99Ms"]
    table = caxton(node, "cluster", "performance").stdout
    assert "no data" not in table
    assert f"({figures['messagesObserved']} messages)" in table  # no more messages since
    assert table.count(" probes)") == 2
