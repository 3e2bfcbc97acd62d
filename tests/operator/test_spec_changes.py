"""Which owned objects a spec change touches, and which changes restart the pods (a new pod
template): only settings a running node needs. The end-to-end side (nothing moves on the
server for a change the nodes do not see) is in test_operator_claims_e2e.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.resources import workload
from caxton_operator.resources.naming import Names

NAMES = Names("demo", "default")
BASE: dict[str, Any] = {"version": "1.2.0", "replicas": 3}


def _objects(spec: dict[str, Any]) -> dict[str, Any]:
    parsed = CaxtonClusterSpec.model_validate(spec)
    sts = workload.statefulset(parsed, NAMES)
    return {
        "configmap": workload.config_map(parsed, NAMES),
        "peers-service": workload.peers_service(NAMES),
        "api-service": workload.api_service(NAMES),
        "pdb": workload.pod_disruption_budget(parsed, NAMES),
        "statefulset": {k: v for k, v in sts["spec"].items() if k != "template"},
        "pod-template": sts["spec"]["template"],
    }


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in change.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


@pytest.mark.parametrize(("change", "touched"), [
    ({"rebalance": {"replaceAfter": "45s"}}, set()),
    ({"rebalance": {"strategy": "none"}}, set()),
    ({"tls": {"renewBefore": "100h"}}, set()),  # the certificates' business, not the workload's
    ({"replicas": 4}, {"configmap", "pdb", "statefulset"}),  # bootstrap_expect; no restart
    ({"replicas": 5}, {"configmap", "pdb", "statefulset"}),
    ({"gossip": {"probeInterval": "2s"}}, {"configmap", "pod-template"}),
    ({"partition": {"detectionTimeout": "9s"}}, {"configmap", "pod-template"}),
    ({"version": "1.3.0"}, {"pod-template"}),
    ({"resources": {"limits": {"memory": "1Gi"}}}, {"pod-template"}),
])
def test_a_spec_change_touches_only_what_depends_on_it(change: dict[str, Any], touched: set[str]) -> None:
    before, after = _objects(BASE), _objects(_merge(BASE, change))
    assert {name for name in before if before[name] != after[name]} == touched


def test_scaling_keeps_the_pod_template_so_nobody_restarts() -> None:
    templates = {_objects(_merge(BASE, {"replicas": n}))["pod-template"]["metadata"]["annotations"][
        "caxton.dev/config-hash"] for n in (1, 3, 4, 7)}
    assert len(templates) == 1


@pytest.mark.parametrize(("change", "restarts"), [
    ({"replicas": 5}, False),
    ({"version": "1.3.0"}, False),  # the roller's business: the version upgrade restarts every node anyway
    ({"rebalance": {"strategy": "none"}}, False),
    ({"gossip": {"probeInterval": "2s"}}, True),
    ({"resources": {"limits": {"memory": "1Gi"}}}, True),
    ({"image": "registry.example/caxton-node"}, True),
])
def test_a_template_change_is_told_apart_from_what_only_the_roller_sets(change: dict[str, Any],
                                                                         restarts: bool) -> None:
    before = workload.statefulset(CaxtonClusterSpec.model_validate(BASE), NAMES)
    after = workload.statefulset(CaxtonClusterSpec.model_validate(_merge(BASE, change)), NAMES)
    assert workload.template_changed(before, after) is restarts


def test_a_restart_token_is_not_a_template_change() -> None:
    spec = CaxtonClusterSpec.model_validate(BASE)
    plain = workload.statefulset(spec, NAMES)
    restarted = workload.statefulset(spec, NAMES, workload.Rollout("1.2.0", partition=2, restart_token="up"))
    assert not workload.template_changed(plain, restarted)


def test_node_pods_run_as_the_image_user_with_a_writable_volume() -> None:
    containerfile = (Path(__file__).resolve().parents[2] / "images" / "Containerfile").read_text()
    user = next(line.split()[1] for line in containerfile.splitlines() if line.startswith("USER "))
    context = workload.statefulset(CaxtonClusterSpec.model_validate(BASE), NAMES)["spec"]["template"]["spec"][
        "securityContext"]
    assert f"{context['runAsUser']}:{context['runAsGroup']}" == user
    assert context["fsGroup"] == context["runAsGroup"] and context["runAsNonRoot"] is True
