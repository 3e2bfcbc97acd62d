"""End to end, the operator highly available as the chart installs it by default: two replicas,
one leading on a Lease and one standing by. The leader's process is SIGKILLed and the standby
takes over when the Lease expires; the leader's pod deleted (a clean stop) hands the Lease back
at once. Exactly one replica leads before and after each (by the Lease and by each replica's own
`caxton_operator_leader` gauge), the new leader reconciles, and both takeover times are printed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.cluster import ClusterUnderTest, pod_ready, temporary_namespace
from tests.support.operator_release import CHART, helm, kill_pod_process, operator_leader
from tests.support.waiting import wait_for

RELEASE, NS = "ha-caxton-operator", "caxton-ha"
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{RELEASE}"


@pytest.fixture(scope="module")
def ha(crds: ClusterUnderTest) -> Iterator[ClusterUnderTest]:
    if not crds.has_process_kubelet:
        pytest.skip("needs the process kubelet of the local control plane (it SIGKILLs the operator's process)")
    helm(crds, "install", RELEASE, str(CHART), "-n", NS, "--create-namespace", "--wait", "--timeout", "180s")
    try:
        yield crds
    finally:
        helm(crds, "uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "120s")
        crds.kube.delete(f"/api/v1/namespaces/{NS}")
        wait_for(lambda: crds.kube.get_or_none(f"/api/v1/namespaces/{NS}") is None, timeout=180,
                 what=f"namespace {NS} to be gone")


def operator_pods(cluster: ClusterUnderTest) -> dict[str, dict[str, Any]]:
    pods = cluster.kube.get(f"/api/v1/namespaces/{NS}/pods",
                            labelSelector=f"app.kubernetes.io/instance={RELEASE}")["items"]
    return {p["metadata"]["name"]: p for p in pods if not p["metadata"].get("deletionTimestamp")}


def says_it_leads(cluster: ClusterUnderTest, pod: str) -> bool | None:
    """The replica's own word (its `caxton_operator_leader` gauge); None if it does not answer."""
    resp = cluster.kube.raw("GET", f"/api/v1/namespaces/{NS}/pods/{pod}:9090/proxy/metrics")
    if resp.status_code != 200:
        return None
    match = re.search(r"^caxton_operator_leader (\S+)$", resp.text, re.M)
    return None if match is None else float(match.group(1)) == 1.0


def the_one_leader(cluster: ClusterUnderTest) -> str | None:
    """The leading pod, when exactly one of two ready replicas says it leads and holds the Lease."""
    pods = operator_pods(cluster)
    if len(pods) != 2 or not all(pod_ready(p) for p in pods.values()):
        return None
    words = {name: says_it_leads(cluster, name) for name in pods}
    leaders = [name for name, leads in words.items() if leads]
    if None in words.values() or len(leaders) != 1 or operator_leader(cluster, NS, RELEASE) != leaders[0]:
        return None
    return leaders[0]


def transitions(cluster: ClusterUnderTest) -> int:
    return int(cluster.kube.get(LEASE)["spec"].get("leaseTransitions") or 0)


def test_the_chart_runs_two_replicas_one_leading(ha: ClusterUnderTest) -> None:
    leader = wait_for(lambda: the_one_leader(ha), timeout=60, what="exactly one of two replicas to lead")
    deployment = ha.kube.get(f"/apis/apps/v1/namespaces/{NS}/deployments/{RELEASE}")
    assert deployment["spec"]["replicas"] == 2
    pdb = ha.kube.get(f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{RELEASE}")
    assert pdb["spec"]["maxUnavailable"] == 1
    wait_for(lambda: (ha.kube.get(f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/{RELEASE}")
                      .get("status") or {}).get("disruptionsAllowed") == 1, timeout=60,
             what="the PodDisruptionBudget to allow one disruption")
    # The metrics Service selects both replicas (the standby reports 0). Its selector is read from
    # the Service: pods on loopback addresses get no EndpointSlice entries on the local plane.
    service = ha.kube.get(f"/api/v1/namespaces/{NS}/services/{RELEASE}-metrics")
    selector = ",".join(f"{k}={v}" for k, v in service["spec"]["selector"].items())
    selected = ha.kube.get(f"/api/v1/namespaces/{NS}/pods", labelSelector=selector)["items"]
    assert sorted(p["metadata"]["name"] for p in selected) == sorted(operator_pods(ha))
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": "metrics"}]
    # The standby answers its liveness probe while it waits.
    standby = next(name for name in operator_pods(ha) if name != leader)
    health = ha.kube.raw("GET", f"/api/v1/namespaces/{NS}/pods/{standby}:8080/proxy/healthz")
    assert health.status_code == 200, health.text


def test_killing_the_leader_hands_over_to_the_standby(ha: ClusterUnderTest, crds: ClusterUnderTest) -> None:
    leader = wait_for(lambda: the_one_leader(ha), timeout=60, what="exactly one of two replicas to lead")
    standby = next(name for name in operator_pods(ha) if name != leader)
    before = transitions(ha)
    restarts = int(operator_pods(ha)[leader]["status"]["containerStatuses"][0].get("restartCount", 0))
    killed_at = time.monotonic()
    assert kill_pod_process(operator_pods(ha)[leader]["status"]["podIP"], b"caxton-operator") >= 1
    wait_for(lambda: operator_leader(ha, NS, RELEASE) == standby, timeout=120, interval=0.1,
             what=f"the standby {standby} to take the Lease")
    takeover = time.monotonic() - killed_at
    print(f"takeover after SIGKILL of the leader: {takeover:.1f}s "
          f"(leaseDurationSeconds {ha.kube.get(LEASE)['spec']['leaseDurationSeconds']})")
    assert transitions(ha) == before + 1
    # The killed container is restarted and comes back as the standby: one leader again.
    wait_for(lambda: int(operator_pods(ha)[leader]["status"]["containerStatuses"][0].get("restartCount", 0))
             > restarts, timeout=60, what=f"{leader} to be restarted")
    assert wait_for(lambda: the_one_leader(ha), timeout=60, what="exactly one leader after the takeover") == standby
    # The new leader acts: a new CaxtonCluster gets its StatefulSet.
    space = temporary_namespace(ha)
    ns = next(space)
    try:
        ha.apply(yaml.safe_dump({"apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonCluster",
                                 "metadata": {"name": "after"}, "spec": {"replicas": 1, "version": "1.2.0"}}), ns)
        wait_for(lambda: ha.kube.get_or_none(f"/apis/apps/v1/namespaces/{ns}/statefulsets/after"), timeout=120,
                 what="the new leader to create the cluster's StatefulSet")
        ha.kubectl("delete", "cxc", "after", "-n", ns, "--wait=true", "--timeout=120s")
    finally:
        next(space, None)


def test_a_clean_stop_hands_the_lease_back_at_once(ha: ClusterUnderTest) -> None:
    leader = wait_for(lambda: the_one_leader(ha), timeout=60, what="exactly one of two replicas to lead")
    holders: list[str | None] = []
    start = ha.kube.get(LEASE)["metadata"]["resourceVersion"]
    done = threading.Event()

    def follow() -> None:
        for event in ha.kube.watch(LEASE.rsplit("/", 1)[0], resource_version=start, timeout_seconds=90,
                                   fieldSelector=f"metadata.name={RELEASE}"):
            if event["type"] in ("ADDED", "MODIFIED"):
                holders.append(event["object"]["spec"].get("holderIdentity"))
                if holders[-1] and not holders[-1].startswith(leader):
                    done.set()
                    return

    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    deleted_at = time.monotonic()
    ha.kubectl("delete", "pod", leader, "-n", NS, "--wait=false")
    assert done.wait(120), holders
    takeover = time.monotonic() - deleted_at
    print(f"takeover after the leader's pod was deleted: {takeover:.1f}s")
    # The stopping leader handed the Lease back (no holder) before another took it.
    assert None in holders, holders
    new = wait_for(lambda: the_one_leader(ha), timeout=120, what="exactly one leader after the clean stop")
    assert new != leader
