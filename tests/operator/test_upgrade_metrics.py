"""The roller reads the gates' counters from a node's real Prometheus exposition."""

from __future__ import annotations

from caxton_node.metrics import NodeMetrics
from caxton_operator.handlers.upgrade import metric_sample
from caxton_operator.upgrade.gates import delta, p99_seconds
from prometheus_client import generate_latest


def test_counters_come_from_the_node_metrics_as_exposed() -> None:
    node = NodeMetrics()
    for seconds in [0.0004] * 98 + [0.02, 0.5]:
        node.message_latency.observe(seconds)
    node.crashes.labels("deadline").inc(3)
    node.dead_letters.labels("agent_failed").inc(3)  # the crashes' own dead letters: not counted twice
    node.dead_letters.labels("queue_full").inc(2)
    sample = metric_sample(generate_latest(node.registry).decode())
    assert sample.handled == 100 and sample.crashes == 3 and sample.dead_letters == 2
    assert dict(sample.buckets)[0.0005] == 98 and dict(sample.buckets)[float("inf")] == 100
    window = delta(sample, None)
    assert window.errors == 5 and p99_seconds(window) == 0.025
