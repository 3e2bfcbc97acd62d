"""What the operator benchmarks share: their command line, the cluster they run on (the one
KUBECONFIG names, or a local control plane of their own) and the operator installed with the
pinned helm for the length of a run."""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.timing import wait_until
from tests.support.cluster import ClusterUnderTest, start_cluster, stop_cluster

CHART = Path(__file__).resolve().parents[1] / "helm" / "caxton-operator"
CRDS = Path(__file__).resolve().parents[1] / "crds"
RELEASE, RELEASE_NS = "caxton-bench", "caxton-bench"


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--helm", help="helm binary (default: the pinned one, or helm on PATH with KUBECONFIG)")
    parser.add_argument("--kubectl", help="kubectl binary (same defaults)")
    parser.add_argument("--json", type=Path)


def helm(cluster: ClusterUnderTest, *args: str) -> None:
    subprocess.run([cluster.helm_path, f"--kubeconfig={cluster.kubeconfig}", *args], check=True,
                   capture_output=True, text=True, timeout=300)


@contextmanager
def cluster_with_operator(args: argparse.Namespace) -> Iterator[ClusterUnderTest]:
    """The cluster with the CRDs applied and the operator installed; afterwards the release is
    uninstalled and its namespace waited out, so a following run can install into it again."""
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    else:
        os.environ.pop("KUBECONFIG", None)
    with tempfile.TemporaryDirectory(prefix="caxton-bench-") as state:
        cluster = start_cluster(Path(state))
        cluster.helm_path = args.helm or cluster.helm_path
        cluster.kubectl_path = args.kubectl or cluster.kubectl_path
        try:
            subprocess.run([cluster.kubectl_path, f"--kubeconfig={cluster.kubeconfig}", "apply", "--server-side",
                            "--force-conflicts", "-f", str(CRDS)], check=True, capture_output=True, timeout=60)
            namespace = f"/api/v1/namespaces/{RELEASE_NS}"
            # A previous run's namespace may still be terminating.
            wait_until(lambda: cluster.kube.get_or_none(namespace) is None, 180, poll=0.5,
                       what=f"namespace {RELEASE_NS} to be gone")
            print(f"installing the operator with helm ({RELEASE} in {RELEASE_NS})", flush=True)
            helm(cluster, "upgrade", "--install", RELEASE, str(CHART), "-n", RELEASE_NS, "--create-namespace",
                 "--wait", "--timeout", "180s")
            try:
                yield cluster
            finally:
                helm(cluster, "uninstall", RELEASE, "-n", RELEASE_NS, "--wait", "--timeout", "120s")
                cluster.kube.delete(namespace)
                wait_until(lambda: cluster.kube.get_or_none(namespace) is None, 180, poll=0.5,
                           what=f"namespace {RELEASE_NS} to be gone")
        finally:
            stop_cluster(cluster)
