"""The benchmarks keep working: a tiny run produces every figure (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_node_benchmark_produces_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "node.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.node", "--messages", "300", "--starts", "20", "--agents", "20",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())["figures"]
    assert set(figures) >= {"routing_p50_us", "routing_p99_us", "echo_msgs_per_s", "route_only_msgs_per_s",
                            "agent_start_p50_ms", "agent_start_p99_ms", "rss_per_agent_kib_20"}
    assert all(value > 0 for name, value in figures.items() if not name.startswith("rss"))
    assert "routing_p99_us" in result.stdout


def test_cluster_benchmark_produces_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "cluster.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.cluster", "--sizes", "3", "--messages", "100", "--skip-reference",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())["figures"]
    assert set(figures) >= {"caxton_join_convergence_s_3", "caxton_failure_detection_s_3",
                            "caxton_cross_node_p50_ms", "caxton_cross_node_p99_ms", "caxton_cross_node_msgs_per_s"}
    assert all(value > 0 for value in figures.values())
