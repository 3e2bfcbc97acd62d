"""Operator benchmark: how fast a CaxtonCluster becomes a running, gossiping cluster.

    python -m bench.operator [--replicas 3] [--trials 3] [--sts-trials 10] [--json out.json]

Installs the operator with the pinned helm (a pod with its service account, as a
user would run it), then for each trial applies a CaxtonCluster in a fresh
namespace and times, from just before the create call: the StatefulSet created, all
pods Ready, and status listing every member alive. The clusters use the CRD's
defaults (gossip included), as a user's would. `--sts-trials` more clusters (1 replica) are
applied and deleted as soon as their StatefulSet exists, one at a time once the
previous one's pod is gone, for the P50 of that step.
Operator RSS and the mean reconcile time come from its own /metrics, read through
the pod proxy.

Without KUBECONFIG (or --kubeconfig) it starts a local control plane of its own
in a temporary directory and stops it at the end.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
import uuid
from typing import Any

from caxton_kube import Kube

from bench.harness import RELEASE, RELEASE_NS, add_cluster_arguments, cluster_with_operator
from bench.report import Targets, report
from bench.timing import wait_until
from tests.support.cluster import ClusterUnderTest

TARGETS: Targets = {"cr_to_statefulset_p50_ms": ("<=", 200.0), "cr_to_all_members_alive_s": ("<=", 20.0)}
POLL = 0.02


def cluster_cr(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonCluster", "metadata": {"name": name},
            "spec": {"replicas": replicas, "version": "1.2.0", "storage": {"size": "64Mi"}}}


class Bench:
    def __init__(self, cluster: ClusterUnderTest) -> None:
        self.cluster = cluster
        self.kube: Kube = cluster.kube

    def namespace(self) -> str:
        name = f"bench-{uuid.uuid4().hex[:6]}"
        self.kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name

    def apply(self, namespace: str, obj: dict[str, Any]) -> None:
        self.kube.create(f"/apis/caxton.dev/v1alpha1/namespaces/{namespace}/caxtonclusters", obj)

    def sts(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get_or_none(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}")

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        obj = self.kube.get(f"/apis/caxton.dev/v1alpha1/namespaces/{namespace}/caxtonclusters/{name}")
        result: dict[str, Any] = obj.get("status") or {}
        return result

    def ready_replicas(self, namespace: str) -> int:
        return int(((self.sts(namespace, "demo") or {}).get("status") or {}).get("readyReplicas", 0))

    def alive_members(self, namespace: str) -> int:
        return sum(m["state"] == "alive" for m in self.status(namespace, "demo").get("members") or [])

    def trial(self, replicas: int) -> tuple[float, float, float]:
        """(to StatefulSet, to all pods Ready, to all members alive in status), seconds."""
        ns = self.namespace()
        try:
            started = time.monotonic()  # before the create call, as for the StatefulSet samples
            self.apply(ns, cluster_cr("demo", replicas))
            wait_until(lambda: self.sts(ns, "demo"), 30, poll=POLL, what="StatefulSet")
            to_sts = time.monotonic() - started
            wait_until(lambda: self.ready_replicas(ns) == replicas, 180, poll=POLL, what="pods Ready")
            to_ready = time.monotonic() - started
            wait_until(lambda: self.alive_members(ns) == replicas, 180, poll=POLL, what="members alive")
            return to_sts, to_ready, time.monotonic() - started
        finally:
            self.kube.delete(f"/api/v1/namespaces/{ns}")

    def sts_latency(self, count: int) -> list[float]:
        ns = self.namespace()
        samples = []
        try:
            for i in range(count):
                name = f"s{i}"
                started = time.monotonic()
                self.apply(ns, cluster_cr(name, 1))
                wait_until(lambda name=name: self.sts(ns, name), 30, poll=POLL, what="StatefulSet")  # type: ignore[misc]
                samples.append(time.monotonic() - started)
                self.kube.delete(f"/apis/caxton.dev/v1alpha1/namespaces/{ns}/caxtonclusters/{name}")
                # Two cores: a node process starting beside the next sample would be measured too.
                wait_until(lambda: not self.kube.get(f"/api/v1/namespaces/{ns}/pods")["items"], 120,
                           what="the sample's pod to go")
        finally:
            self.kube.delete(f"/api/v1/namespaces/{ns}")
        return samples

    def operator_metrics(self) -> dict[str, float]:
        """The operator's RSS and mean CaxtonCluster reconcile time, from its own /metrics."""
        # The leader's: the standby replica reconciles nothing. Lease holders are `<pod>_<suffix>`.
        def leader() -> str | None:  # the chart names the Lease after the release's full name
            leases = self.kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{RELEASE_NS}/leases")["items"]
            holders = [(lease.get("spec") or {}).get("holderIdentity") for lease in leases
                       if lease["metadata"]["name"].startswith(RELEASE)]
            return str(holders[0]).rsplit("_", 1)[0] if holders and holders[0] else None

        wait_until(leader, 60, what="the operator's leader")
        pod = leader()
        text = self.kube.raw("GET", f"/api/v1/namespaces/{RELEASE_NS}/pods/{pod}:9090/proxy/metrics").text

        def value(pattern: str) -> float:
            match = re.search(rf"^{re.escape(pattern)} ([0-9.e+-]+)$", text, re.M)
            return float(match.group(1)) if match else 0.0

        reconcile = 'caxton_operator_reconcile_duration_seconds_{}{{kind="CaxtonCluster"}}'
        count = value(reconcile.format("count"))
        return {"operator_rss_mib": value("process_resident_memory_bytes") / 2**20,
                "reconcile_mean_ms": value(reconcile.format("sum")) / count * 1000 if count else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--sts-trials", type=int, default=10)
    add_cluster_arguments(parser)
    args = parser.parse_args()
    with cluster_with_operator(args) as cluster:
        bench = Bench(cluster)
        print(f"{args.sts_trials} clusters applied for the StatefulSet latency", flush=True)
        sts = bench.sts_latency(args.sts_trials)
        runs = []
        for i in range(args.trials):
            runs.append(bench.trial(args.replicas))
            print(f"trial {i + 1}: StatefulSet {runs[-1][0] * 1000:.0f} ms, pods Ready {runs[-1][1]:.1f} s, "
                  f"members alive {runs[-1][2]:.1f} s", flush=True)
        operator = bench.operator_metrics()
    figures = {
        "cr_to_statefulset_p50_ms": statistics.median(sts) * 1000,
        "cr_to_statefulset_max_ms": max(sts) * 1000,
        "cr_to_pods_ready_s": statistics.median(r[1] for r in runs),
        "cr_to_all_members_alive_s": statistics.median(r[2] for r in runs),
        **operator,
    }
    report(figures, TARGETS, args.json)


if __name__ == "__main__":
    main()
