"""The benchmarks keep working: a tiny run produces every figure (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cluster import ClusterUnderTest


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


def test_ingress_benchmark_produces_its_figures_in_both_delivery_modes(tmp_path: Path) -> None:
    out = tmp_path / "ingress.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.ingress", "--messages", "400", "--batch", "100", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(out.read_text())
    figures = report["figures"]
    assert set(figures) == {f"{mode}_{name}" for mode in ("at_most_once", "at_least_once") for name in (
        "single_p50_ms", "single_p99_ms", "single_msgs_per_s", "batch_msgs_per_s")}
    assert all(value > 0 for value in figures.values())
    assert any("uvicorn with" in line for line in report["settings"])


def test_cluster_benchmark_produces_its_figures_and_the_references(tmp_path: Path) -> None:
    """Serf and NATS run too (hack/setup.sh installs them), so the comparator paths cannot rot."""
    out = tmp_path / "cluster.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.cluster", "--sizes", "3", "--messages", "100", "--json", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(out.read_text())
    figures = report["figures"]
    assert set(figures) >= {
        "caxton_join_convergence_s_3", "caxton_failure_detection_s_3",
        "serf_join_convergence_s_3", "serf_failure_detection_s_3",
        "caxton_cross_node_p50_ms", "caxton_cross_node_p99_ms", "caxton_cross_node_msgs_per_s",
        "caxton_ingress_p50_ms", "caxton_ingress_p99_ms", "caxton_ingress_msgs_per_s",
        "nats_cross_node_p50_ms", "nats_cross_node_p99_ms", "nats_cross_node_msgs_per_s",
        "ratio_join_convergence_3", "ratio_failure_detection_3", "ratio_cross_node_p99",
        "ratio_cross_node_ingress_p99", "payload_bytes",
    }
    assert all(value > 0 for value in figures.values())
    # The table says what each comparison holds equal.
    settings = " ".join(report["settings"])
    for held in ("Lifeguard", "push-pull 30s", "Serf RPC", "mTLS", "FIPA envelope", "bearer token"):
        assert held in settings
    assert "held equal:" in result.stdout


def test_operator_benchmark_measures_clusters_on_the_crd_defaults() -> None:
    from bench.operator import cluster_cr

    spec = cluster_cr("demo", 3)["spec"]
    assert set(spec) == {"replicas", "version", "storage"}, "anything else would not be what a user gets"


def test_operator_benchmark_produces_its_figures(crds: ClusterUnderTest, tmp_path: Path) -> None:
    if not crds.has_process_kubelet:
        pytest.skip("installs the operator image, which only the process kubelet runs without a registry")
    out = tmp_path / "operator.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.operator", "--trials", "1", "--sts-trials", "2", "--replicas", "2",
         "--kubeconfig", str(crds.kubeconfig), "--helm", crds.helm_path, "--kubectl", crds.kubectl_path,
         "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    figures = json.loads(out.read_text())["figures"]
    assert set(figures) >= {"cr_to_statefulset_p50_ms", "cr_to_pods_ready_s", "cr_to_all_members_alive_s",
                            "operator_rss_mib"}
    assert all(value > 0 for value in figures.values())
    assert "cr_to_statefulset_p50_ms" in result.stdout
