"""bench/upgrade.py keeps working: a small run produces every figure (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cluster import ClusterUnderTest


@pytest.mark.timeout(1200)
def test_upgrade_benchmark_produces_its_figures(crds: ClusterUnderTest, tmp_path: Path) -> None:
    if not crds.has_process_kubelet:
        pytest.skip("installs the operator image, which only the process kubelet runs without a registry")
    out = tmp_path / "upgrade.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.upgrade", "--replicas", "3", "--batch-size", "1", "--rate", "50",
         "--steady", "3", "--kubeconfig", str(crds.kubeconfig), "--helm", crds.helm_path,
         "--kubectl", crds.kubectl_path, "--json", str(out)],
        capture_output=True, text=True, timeout=1100,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    figures = json.loads(out.read_text())["figures"]
    assert set(figures) >= {"upgrade_3_nodes_s", "messages_sent", "messages_lost", "messages_duplicated",
                            "messages_resent", "p99_steady_ms", "p99_during_upgrade_ms", "load_msgs_per_s"}
    assert figures["messages_sent"] > 0 and figures["upgrade_3_nodes_s"] > 0
    assert figures["messages_lost"] == 0
    assert "p99_during_upgrade_ms" in result.stdout
