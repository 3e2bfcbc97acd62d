"""The Kubernetes cluster the end-to-end tests run against.

Without KUBECONFIG the suite brings up its own local control plane (fresh state
directory, free apiserver port, a 1 s crash back-off so restart tests are short)
once per session (its pods on 127.<slot>.1.N, see `test_network`) and tears it down
afterwards. With KUBECONFIG it uses that cluster instead, and tests that need the
process kubelet are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caxton_kube import Kube
from caxton_local.controlplane import ControlPlane
from caxton_local.layout import Layout, Ports, Settings, free_port

from tests.support.addresses import test_network


@dataclass
class ClusterUnderTest:
    kubeconfig: Path
    kubectl_path: str
    helm_path: str
    plane: ControlPlane | None  # None when the cluster came from KUBECONFIG
    kube: Kube

    @property
    def has_process_kubelet(self) -> bool:
        return self.plane is not None

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, input=input, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def apply(self, manifest: str, namespace: str) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def start_cluster(state_root: Path) -> ClusterUnderTest:
    external = os.environ.get("KUBECONFIG")
    if external:
        kubeconfig = Path(external.split(os.pathsep)[0])
        return ClusterUnderTest(
            kubeconfig=kubeconfig,
            kubectl_path=shutil.which("kubectl") or "kubectl",
            helm_path=shutil.which("helm") or "helm",
            plane=None,
            kube=Kube(kubeconfig),
        )
    # Its own address range, so a developer's `caxton local up` (and other test runs, each with
    # its own CAXTON_TEST_SLOT) can keep running beside it.
    net = test_network()
    settings = Settings(ports=Ports(apiserver=free_port()), crash_backoff_seconds=1.0,
                        pod_ip_first=f"{net}.1.2", pod_ip_last=f"{net}.1.254", dns_ip=f"{net}.53.2")
    plane = ControlPlane(Layout(state_root / "local"), settings)
    try:
        plane.up(log=lambda message: print(message, flush=True))
    except BaseException:  # a failed or interrupted start stops the parts it started
        plane.down(purge=True, log=lambda message: None)
        raise
    return ClusterUnderTest(
        kubeconfig=plane.kubeconfig,
        kubectl_path=str(plane.layout.bin / "kubectl"),
        helm_path=str(plane.layout.bin / "helm"),
        plane=plane,
        kube=Kube(plane.kubeconfig),
    )


def stop_cluster(cluster: ClusterUnderTest) -> None:
    cluster.kube.close()
    if cluster.plane is not None:
        cluster.plane.down(purge=True, log=lambda message: None)


def temporary_namespace(cluster: ClusterUnderTest) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": name}})
    try:
        yield name
    finally:
        cluster.kube.delete(f"/api/v1/namespaces/{name}")


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions") or [])
