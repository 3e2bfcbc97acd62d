"""The operator as the end-to-end tests install it: the chart, with the pinned helm, into
`caxton-system`, one release per test module; and the pod processes tests kill on purpose."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.cluster import ClusterUnderTest
from tests.support.waiting import wait_for

CHART = Path(__file__).resolve().parents[2] / "helm" / "caxton-operator"
RELEASE, OPERATOR_NS = "caxton-operator", "caxton-system"


def helm(cluster: ClusterUnderTest, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([cluster.helm_path, f"--kubeconfig={cluster.kubeconfig}", *args],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"
    return result


def operator_release(cluster: ClusterUnderTest) -> Iterator[ClusterUnderTest]:
    """Installs the chart for the life of a module fixture; afterwards waits until its namespace
    is gone, since the next module installs into the same one and it must not be terminating."""
    helm(cluster, "upgrade", "--install", RELEASE, str(CHART), "-n", OPERATOR_NS, "--create-namespace", "--wait",
         "--timeout", "180s")
    try:
        yield cluster
    finally:
        helm(cluster, "uninstall", RELEASE, "-n", OPERATOR_NS, "--wait", "--timeout", "120s")
        cluster.kube.delete(f"/api/v1/namespaces/{OPERATOR_NS}")
        wait_for(lambda: cluster.kube.get_or_none(f"/api/v1/namespaces/{OPERATOR_NS}") is None, timeout=180,
                 what=f"namespace {OPERATOR_NS} to be gone")


def kill_pod_process(pod_ip: str, command_word: bytes) -> int:
    """SIGKILLs the process-kubelet processes of the pod at `pod_ip` whose command line holds
    `command_word` (found through the pod address in their environment); returns how many."""
    killed = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"CAXTON_POD_IP={pod_ip}".encode() in environ and command_word in cmdline:
            os.kill(int(proc.name), signal.SIGKILL)
            killed += 1
    return killed


def operator_leader(cluster: ClusterUnderTest, namespace: str = OPERATOR_NS, release: str = RELEASE) -> str | None:
    """The pod whose replica holds the release's Lease (the one acting); None while none does.
    Holders are `<pod>_<suffix>` (caxton_operator.main)."""
    lease = cluster.kube.get_or_none(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{release}")
    holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
    return str(holder).rsplit("_", 1)[0] if holder else None
