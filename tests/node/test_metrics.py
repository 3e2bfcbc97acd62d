"""The metrics endpoint: the runbook's names, and promtool accepts it."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from tests.node.test_agents import collect, deploy, send
from tests.support.nodes import NodeFactory

RUNBOOK_METRICS = (
    "caxton_cluster_nodes_alive", "caxton_cluster_nodes_failed", "caxton_cluster_gossip_latency_seconds",
    "caxton_agent_message_latency_p99", "caxton_agent_crashes_total", "caxton_agent_memory_used_bytes",
    "caxton_system_cpu_usage_percent", "caxton_system_memory_available_bytes",
    "caxton_agent_message_latency_seconds_bucket", "caxton_queue_depth", "caxton_messages_routed_total",
)


def test_metrics_have_runbook_names_and_pass_promtool(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        deploy(client, "echo", agents["echo"])
        for i in range(50):
            send(client, "echo", i)
        collect(client, "tester", 50)
    text = httpx.get(node.metrics_url).text
    for name in RUNBOOK_METRICS:
        assert f"\n{name}" in text, f"{name} missing"
    assert 'caxton_messages_routed_total{destination="local"} 50.0' in text
    assert 'caxton_messages_routed_total{destination="mailbox"} 50.0' in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (hack/setup.sh installs Debian's prometheus package)")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
