"""The plugin starts fast because it imports only what the command needs: checked by
what a fresh interpreter has imported (sys.modules), not by a clock. bench/cli.py
measures the time itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Modules that cost tens to hundreds of milliseconds to import, or belong elsewhere.
HEAVY = ("httpx", "yaml", "kubernetes", "caxton_kube", "caxton_local", "caxton_node", "caxton_operator",
         "pydantic", "cryptography", "fastapi", "wasmtime", "kopf", "concurrent.futures")
NEVER = ("kubernetes", "caxton_local", "caxton_operator", "caxton_node", "pydantic", "cryptography", "wasmtime",
         "kopf", "fastapi")

PROBE = """
import json, sys
from caxton_cli.main import run
try:
    code = run(sys.argv[2:], sys.argv[1])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def modules_after(prog: str, *argv: str) -> tuple[int, set[str]]:
    """Runs the command line in a fresh interpreter; its exit code and every module it imported."""
    result = subprocess.run([sys.executable, "-c", PROBE, prog, *argv], capture_output=True, text=True, timeout=60)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


def test_importing_the_entry_point_imports_nothing_heavy() -> None:
    result = subprocess.run([sys.executable, "-c", "import json, sys, caxton_cli.main; "
                             "print(json.dumps(sorted(sys.modules)))"], capture_output=True, text=True, timeout=60)
    assert loaded(set(json.loads(result.stdout)), HEAVY) == []


@pytest.mark.parametrize("argv", [["--help"], ["cluster", "--help"], ["cluster", "members", "--help"],
                                  ["completion", "bash"], ["cluster", "members", "--bogus"]])
def test_help_completion_and_usage_errors_import_nothing_heavy(argv: list[str]) -> None:
    code, modules = modules_after("kubectl caxton", *argv)
    assert code in (0, 2)
    assert loaded(modules, HEAVY) == []


def test_a_cluster_command_imports_neither_httpx_nor_the_kubernetes_package(tmp_path: Path) -> None:
    # A kubeconfig pointing at a closed port: the command gets as far as the first request.
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "x"}}],
    }))
    code, modules = modules_after("kubectl caxton", "cluster", "members", "--kubeconfig", str(kubeconfig))
    assert code == 2  # unreachable
    assert "caxton_kube.oneshot" in modules
    assert loaded(modules, (*NEVER, "httpx", "httpcore", "anyio")) == []  # http.client is enough for a few requests


@pytest.mark.parametrize("argv", [["cluster", "members"], ["cluster", "members", "--cluster", "demo"],
                                  ["memory", "stats", "--cluster", "demo"], ["cluster", "scale", "--replicas", "2"],
                                  ["agents", "remove", "echo", "--cluster", "demo"]])
def test_an_unreachable_api_server_is_one_line_and_exit_2(argv: list[str], tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    plugin = Path(sys.executable).parent / "kubectl-caxton"
    result = subprocess.run([str(plugin), *argv, "--kubeconfig", str(kubeconfig)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: cannot reach the API server") and result.stderr.count("\n") == 1

