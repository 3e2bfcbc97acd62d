"""The chart's alert rules pass `promtool check rules`, and `promtool test rules` shows each
runbook alert (node down, split brain, agent storm, queue backlog, certificates expiring,
upgrade rolled back) fire and resolve (alerts_test.yaml). The chart renders them as a
PrometheusRule, and a ServiceMonitor, only when asked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "caxton-operator"
RULES = CHART / "files" / "caxton-alerts.yaml"
ALERTS = {"CaxtonNodeDown", "CaxtonSplitBrain", "CaxtonAgentStorm", "CaxtonQueueBacklog", "CaxtonCertificateExpiring",
          "CaxtonUpgradeRolledBack"}


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: hack/setup.sh installs Debian's prometheus package"
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_every_alert_fires_and_resolves_in_promtool_unit_tests() -> None:
    tests = Path(__file__).parent / "alerts_test.yaml"
    result = promtool("test", "rules", tests.name, cwd=tests.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {case["alertname"] for group in yaml.safe_load(tests.read_text())["tests"]
              for case in group["alert_rule_test"]}
    assert tested == ALERTS


def test_a_broken_expectation_fails(tmp_path: Path) -> None:
    """The unit tests can fail: the backlog alert expected below its threshold is an error."""
    suite = yaml.safe_load((Path(__file__).parent / "alerts_test.yaml").read_text())
    suite["rule_files"] = [str(RULES)]
    for group in suite["tests"]:
        for series in group["input_series"]:
            series["values"] = series["values"].replace("20000x10", "9999x10")
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(suite))
    result = promtool("test", "rules", "broken.yaml", cwd=tmp_path)
    assert result.returncode != 0 and "CaxtonQueueBacklog" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def helm_path() -> str:
    from caxton_local.toolchain import HELM

    return str(toolchain_helm) if (toolchain_helm := HELM.binary("helm")).is_file() else shutil.which("helm") or "helm"


def render(helm: str, *sets: str) -> list[dict[str, object]]:
    args = [helm, "template", "rel", str(CHART), "-n", "caxton-system"]
    for s in sets:
        args += ["--set", s]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_chart_renders_the_rules_and_monitor_only_when_enabled(helm_path: str) -> None:
    kinds = {d["kind"] for d in render(helm_path)}
    assert not {"PrometheusRule", "ServiceMonitor", "PodMonitor"} & kinds
    docs = render(helm_path, "prometheusRule.enabled=true", "serviceMonitor.enabled=true")
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]} == ALERTS  # type: ignore[index]
    monitors = {str(d["metadata"]["name"]): d for d in docs  # type: ignore[index]
                if d["kind"] in ("ServiceMonitor", "PodMonitor")}
    assert {d["kind"] for d in monitors.values()} == {"ServiceMonitor"} and set(monitors) == {"rel-caxton-operator",
                                                                                            "rel-caxton-operator-nodes"}
    nodes: dict[str, Any] = monitors["rel-caxton-operator-nodes"]["spec"]  # type: ignore[assignment]
    assert nodes["selector"] == {"matchLabels": {"app.kubernetes.io/name": "caxton"}}
    assert nodes["namespaceSelector"] == {"any": True} and nodes["endpoints"][0]["port"] == "metrics"
    operator: dict[str, Any] = monitors["rel-caxton-operator"]["spec"]  # type: ignore[assignment]
    assert operator["selector"]["matchLabels"]["app.kubernetes.io/name"] == "caxton-operator"
