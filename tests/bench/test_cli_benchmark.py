"""The plugin start-up benchmark keeps working: a tiny run produces its figures (no
timing asserted), through kubectl's plugin discovery too when kubectl is built."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from caxton_local.toolchain import KUBERNETES


def test_cli_benchmark_produces_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "cli.json"
    kubectl = KUBERNETES.binary("kubectl")
    extra = ["--kubectl", str(kubectl)] if kubectl.exists() else []
    result = subprocess.run([sys.executable, "-m", "bench.cli", "--runs", "2", *extra, "--json", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    expected = {"python_start_p50_ms", "help_p50_ms", "help_p95_ms", "help_cpu_p50_ms"} | (
        {"help_via_kubectl_p50_ms"} if extra else set())
    assert expected <= set(report["figures"])
    assert all(value > 0 for value in report["figures"].values())
    assert report["targets"]["help_p50_ms"] == {"op": "<=", "value": 300.0}
    assert "help_p50_ms" in result.stdout
