"""The API server itself refuses invalid custom resources, with a message that says what to fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from caxton_node.limits import FUEL_MAX

from tests.support.cluster import ClusterUnderTest

SHA = "0" * 64


def cluster_cr(name: str = "demo", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonCluster", "metadata": {"name": name},
            "spec": {"version": "1.2.0", **spec}}


def agent_cr(**module: Any) -> dict[str, Any]:
    return {"apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonAgent", "metadata": {"name": "auctioneer"},
            "spec": {"clusterRef": {"name": "demo"}, "module": {"sha256": SHA, **module}}}


def agent_limits_cr(**limits: Any) -> dict[str, Any]:
    cr = agent_cr(url="https://example.invalid/a.wasm")
    cr["spec"]["limits"] = limits
    return cr


def backup_cr(**destination: Any) -> dict[str, Any]:
    return {"apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonBackup", "metadata": {"name": "nightly"},
            "spec": {"clusterRef": {"name": "demo"}, "destination": destination}}


def apply(cluster: ClusterUnderTest, namespace: str, obj: dict[str, Any]) -> tuple[int, str]:
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj), check=False)
    return result.returncode, result.stderr


INVALID = [
    ("negative replicas", cluster_cr(replicas=-1), "spec.replicas: Invalid value: -1"),
    ("zero replicas", cluster_cr(replicas=0), "should be greater than or equal to 1"),
    ("bad version", cluster_cr(version="1.2"), "spec.version in body should match"),
    ("missing version", {**cluster_cr(), "spec": {"replicas": 3}}, "spec.version: Required value"),
    ("unknown field", cluster_cr(replica=3), 'unknown field "spec.replica"'),
    ("bad duration", cluster_cr(gossip={"interval": "fast"}), "spec.gossip.interval in body should match"),
    ("probe timeout too long", cluster_cr(gossip={"probeInterval": "1s", "probeTimeout": "2s"}),
     "gossip.probeTimeout must be shorter than gossip.probeInterval"),
    ("renewBefore too long", cluster_cr(tls={"certDuration": "24h", "renewBefore": "48h"}),
     "tls.renewBefore must be shorter than tls.certDuration"),
    ("threshold over 100%", cluster_cr(rebalance={"threshold": "120%"}),
     "spec.rebalance.threshold in body should match"),
    ("quorum above replicas", cluster_cr(replicas=3, partition={"quorumSize": 5}),
     "partition.quorumSize cannot exceed replicas"),
    ("unknown strategy", cluster_cr(rebalance={"strategy": "random"}), 'Unsupported value: "random"'),
    ("agent with two module sources",
     agent_cr(configMapRef={"name": "m", "key": "agent.wasm"}, url="https://example.invalid/agent.wasm"),
     "module needs exactly one of configMapRef, secretRef or url"),
    ("agent with no module source", agent_cr(), "module needs exactly one of configMapRef, secretRef or url"),
    ("agent with a bad sha256", {**agent_cr(url="https://example.invalid/a.wasm"),
                                 "spec": {"clusterRef": {"name": "demo"},
                                          "module": {"url": "https://example.invalid/a.wasm", "sha256": "xyz"}}},
     "spec.module.sha256 in body should match"),
    # The node's own bounds (caxton_node.limits), so the API server admits only what a node runs.
    ("agent fuel that would wrap", agent_limits_cr(fuel=2**70), "spec.limits.fuel"),
    ("agent fuel above the node's maximum", agent_limits_cr(fuel=FUEL_MAX + 1),
     f"should be less than or equal to {FUEL_MAX}"),
    ("agent deadline under 1ms", agent_limits_cr(deadline="0.000001s"), "limits.deadline must be between 1ms and 60s"),
    ("agent deadline over 60s", agent_limits_cr(deadline="61s"), "limits.deadline must be between 1ms and 60s"),
    ("agent memory under 64Ki", agent_limits_cr(memory="1Ki"), "limits.memory must be between 64Ki and 4Gi"),
    ("backup to s3 without credentials", backup_cr(path="s3://backups/x/", endpoint="https://s3.example.com"),
     "an s3:// destination needs endpoint and s3Credentials"),
    ("backup to a path", backup_cr(path="/var/lib/caxton/"), "spec.destination.path in body should match"),
    ("backup path with ..", backup_cr(path="pvc://vol/../x/"), "spec.destination.path in body should match"),
    ("backup with a bad id", {**backup_cr(path="pvc://vol/x/"), "spec": {
        "clusterRef": {"name": "demo"}, "destination": {"path": "pvc://vol/x/"}, "id": "Bad_Id"}},
     "spec.id in body should match"),
]


@pytest.mark.parametrize(("case", "obj", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_resources_are_rejected_by_the_api_server(
    crds: ClusterUnderTest, namespace: str, case: str, obj: dict[str, Any], message: str
) -> None:
    code, stderr = apply(crds, namespace, obj)
    assert code != 0, f"{case} was accepted"
    assert message in stderr, stderr


def test_changing_an_immutable_field_is_rejected(crds: ClusterUnderTest, namespace: str) -> None:
    assert apply(crds, namespace, cluster_cr(storage={"storageClassName": "standard"}))[0] == 0
    code, stderr = apply(crds, namespace, cluster_cr(storage={"storageClassName": "fast"}))
    assert code != 0
    assert "storage.storageClassName is immutable" in stderr
    upgrade: dict[str, Any] = {"apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonUpgrade", "metadata": {"name": "up"},
               "spec": {"clusterRef": {"name": "demo"}, "version": "1.3.0"}}
    assert apply(crds, namespace, upgrade)[0] == 0
    upgrade["spec"]["clusterRef"] = {"name": "other"}
    code, stderr = apply(crds, namespace, upgrade)
    assert code != 0 and "clusterRef is immutable" in stderr
    backup = backup_cr(path="pvc://vol/x/")
    assert apply(crds, namespace, backup)[0] == 0
    backup["spec"]["compress"] = True
    code, stderr = apply(crds, namespace, backup)
    assert code != 0 and "a CaxtonBackup's spec is immutable: create a new CaxtonBackup" in stderr


def test_valid_cluster_gets_defaults_and_printer_columns(crds: ClusterUnderTest, namespace: str) -> None:
    assert apply(crds, namespace, cluster_cr())[0] == 0
    stored = json.loads(crds.kubectl("get", "cxc", "demo", "-n", namespace, "-o", "json").stdout)
    spec = stored["spec"]
    assert spec["replicas"] == 3
    assert spec["gossip"] == {"interval": "200ms", "fanout": 3, "probeInterval": "1s", "probeTimeout": "500ms",
                              "suspicionMultiplier": 4}
    assert spec["tls"]["certDuration"] == "2160h"
    header = crds.kubectl("get", "cxc", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "READY", "REPLICAS", "VERSION", "AGE"]
    scaled = crds.kubectl("scale", "cxc", "demo", "-n", namespace, "--replicas=5")
    assert "scaled" in scaled.stdout
    assert json.loads(crds.kubectl("get", "cxc", "demo", "-n", namespace, "-o", "json").stdout)["spec"]["replicas"] == 5


def test_agent_limits_at_the_node_bounds_are_admitted(crds: ClusterUnderTest, namespace: str) -> None:
    for limits in ({"fuel": FUEL_MAX, "deadline": "60s", "memory": "4Gi"},
                   {"fuel": 1, "deadline": "1ms", "memory": "64Ki"}):
        code, stderr = apply(crds, namespace, agent_limits_cr(**limits))
        assert code == 0, stderr


def test_the_example_cluster_is_valid(crds: ClusterUnderTest, namespace: str) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "caxtoncluster.yaml"
    result = crds.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(example))
    assert "caxtoncluster.caxton.dev/demo created (server dry run)" in result.stdout
