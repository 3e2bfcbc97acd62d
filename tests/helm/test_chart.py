"""The chart judged by the real tools: `helm lint --strict`, and every values case rendered by
`helm template` and applied with server-side dry-run to the API server, with strict field
validation. A field the API refuses (a wrong type, an unknown field, a bad quantity, a kind whose
CRD is missing) then fails here rather than at a user's `helm install`. The bad cases at the end
show the check has teeth: values the chart's schema lets through, which the API server refuses.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from caxton_node import pki

from tests.support.cluster import ClusterUnderTest, temporary_namespace
from tests.support.operator_release import CHART
from tests.support.waiting import wait_for

SERVICE_MONITOR_CRD = Path(__file__).with_name("servicemonitor-crd.yaml")
SERVICE_MONITOR_CRD_NAME = "servicemonitors.monitoring.coreos.com"
RELEASE = "chart-check"

Values = dict[str, Any]


class Namespaces:
    """The release's namespace and two more a values case may name (they must exist for a dry-run)."""

    def __init__(self, release: str, one: str, two: str) -> None:
        self.release, self.one, self.two = release, one, two


def _module_ca() -> str:
    return pki.new_ca("chart-check module CA").cert_pem.decode()


# Each case: a name and the values it sets, given the namespaces that exist for it.
CASES: dict[str, Callable[[Namespaces], Values]] = {
    "defaults": lambda ns: {},
    "watch-namespaces": lambda ns: {"watchNamespaces": [ns.one, ns.two]},
    "service-monitor": lambda ns: {"serviceMonitor": {
        "enabled": True, "labels": {"release": "prometheus"}, "interval": "15s", "scrapeTimeout": "10s"}},
    "service-monitor-elsewhere": lambda ns: {"serviceMonitor": {"enabled": True, "namespace": ns.one}},
    "resources": lambda ns: {"resources": {"requests": {"cpu": "250m", "memory": "256Mi"},
                                           "limits": {"cpu": 1, "memory": "1Gi"}}},
    "one-replica-no-election": lambda ns: {"replicaCount": 1, "leaderElection": {"enabled": False}},
    "three-replicas": lambda ns: {"replicaCount": 3, "podDisruptionBudget": {"maxUnavailable": "50%"},
                                  "leaderElection": {"leaseDurationSeconds": 30, "renewDeadlineSeconds": 20,
                                                     "retryPeriodSeconds": 4}},
    "everything-else": lambda ns: {
        "image": {"repository": "registry.example/caxton-operator", "tag": "9.9.9", "pullPolicy": "Always"},
        "logLevel": "DEBUG",
        "moduleCA": _module_ca(),
        "serviceAccount": {"create": False, "name": "existing"},
        "ports": {"health": 18080, "metrics": 19090},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}}]}},
        "podAnnotations": {"example.com/team": "ops"},
    },
}

# Values the chart's schema accepts (it checks shapes, not Kubernetes' formats) that the API server
# refuses, with the words of its refusal.
REFUSED: dict[str, tuple[Values, str]] = {
    "bad-quantity": ({"resources": {"requests": {"cpu": "lots"}}}, "quantities must match the regular expression"),
    "bad-scrape-timeout": ({"serviceMonitor": {"enabled": True, "scrapeTimeout": "soon"}},
                           "spec.endpoints[0].scrapeTimeout"),
}


@pytest.fixture(scope="module")
def namespaces(cluster: ClusterUnderTest) -> Iterator[Namespaces]:
    spaces = [temporary_namespace(cluster) for _ in range(3)]
    names = [next(space) for space in spaces]
    try:
        yield Namespaces(*names)
    finally:
        for space in spaces:
            next(space, None)


@pytest.fixture(scope="module")
def service_monitor_crd(cluster: ClusterUnderTest) -> Iterator[None]:
    """The Prometheus Operator's ServiceMonitor CRD, installed for real (a dry-run of a custom
    resource needs its type served); left alone if the cluster already has one."""
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{SERVICE_MONITOR_CRD_NAME}"
    if cluster.kube.get_or_none(path) is not None:
        yield
        return
    cluster.kubectl("apply", "--server-side", "-f", str(SERVICE_MONITOR_CRD))
    try:
        wait_for(lambda: any(c["type"] == "Established" and c["status"] == "True"
                             for c in (cluster.kube.get(path).get("status") or {}).get("conditions") or []),
                 timeout=30, what="the ServiceMonitor CRD to be established")
        yield
    finally:
        cluster.kube.delete(path)


def _values_file(tmp_path: Path, values: Values) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _helm(cluster: ClusterUnderTest, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cluster.helm_path, *args], capture_output=True, text=True, timeout=120)


def render(cluster: ClusterUnderTest, namespace: str, values: Path) -> str:
    rendered = _helm(cluster, "template", RELEASE, str(CHART), "-n", namespace, "-f", str(values), "--include-crds")
    assert rendered.returncode == 0, rendered.stderr
    return rendered.stdout


def dry_run(cluster: ClusterUnderTest, manifest: str) -> subprocess.CompletedProcess[str]:
    """Server-side apply, dry-run, strict field validation: the API server's full admission of
    every object, nothing stored. (Every namespaced object names its namespace.)"""
    return cluster.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server",
                           "--validate=strict", "--field-manager=helm", "-f", "-", input=manifest, check=False)


@pytest.mark.controlplane
@pytest.mark.parametrize("case", list(CASES))
def test_values_case_lints_and_passes_server_side_dry_run(
        case: str, cluster: ClusterUnderTest, namespaces: Namespaces, service_monitor_crd: None,
        tmp_path: Path) -> None:
    values = _values_file(tmp_path, CASES[case](namespaces))
    lint = _helm(cluster, "lint", "--strict", str(CHART), "-n", namespaces.release, "-f", str(values))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    manifest = render(cluster, namespaces.release, values)
    objects = [doc for doc in yaml.safe_load_all(manifest) if doc]
    applied = dry_run(cluster, manifest)
    assert applied.returncode == 0, applied.stderr
    # kubectl names each object it sent: "kind.group/name serverside-applied (server dry run)".
    sent = sorted(f"{obj['kind'].lower()}/{obj['metadata']['name']}" for obj in objects)
    admitted = sorted(f"{kind.split('.')[0]}/{name}" for kind, name in (
        line.split()[0].split("/", 1) for line in applied.stdout.splitlines() if line.endswith("(server dry run)")))
    assert admitted == sent, applied.stdout


@pytest.mark.controlplane
@pytest.mark.parametrize("case", list(REFUSED))
def test_values_the_api_server_refuses_fail_the_dry_run(
        case: str, cluster: ClusterUnderTest, namespaces: Namespaces, service_monitor_crd: None,
        tmp_path: Path) -> None:
    values, words = REFUSED[case]
    manifest = render(cluster, namespaces.release, _values_file(tmp_path, values))
    applied = dry_run(cluster, manifest)
    assert applied.returncode != 0 and words in applied.stderr, applied.stdout + applied.stderr


@pytest.mark.parametrize(("values", "words"), [
    ({"replicaCount": 2, "leaderElection": {"enabled": False}}, "replicaCount > 1 needs leaderElection.enabled"),
    ({"leaderElection": {"renewDeadlineSeconds": 15}}, "retryPeriodSeconds < renewDeadlineSeconds < leaseDuration"),
])
def test_the_chart_refuses_values_that_could_let_two_replicas_act(values: Values, words: str,
                                                                  cluster: ClusterUnderTest, tmp_path: Path) -> None:
    result = _helm(cluster, "template", RELEASE, str(CHART), "-f", str(_values_file(tmp_path, values)))
    assert result.returncode != 0 and words in result.stderr, result.stderr
