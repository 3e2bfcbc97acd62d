"""Objects a fresh local cluster needs before workloads can run on it.

A default StorageClass named `standard` (kind's name, so manifests work on both)
served by the process kubelet's directory provisioner, CoreDNS's read-only RBAC,
and a wait for the process nodes and the `default` ServiceAccount, without which
pod creation fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from caxton_kube import Kube, KubeError

from caxton_local.layout import Settings

PROVISIONER = "caxton.dev/local-dir"
STORAGE_CLASS = "standard"


def _ensure_storage_class(kube: Kube) -> None:
    body = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }
    try:
        kube.create("/apis/storage.k8s.io/v1/storageclasses", body)
    except KubeError as err:
        if err.status != 409:
            raise


def _ensure_coredns_rbac(kube: Kube) -> None:
    """CoreDNS reads Services, EndpointSlices, Pods and Namespaces, nothing else."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "system:coredns"},
        "rules": [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "system:coredns"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:coredns"}],
    }
    for path, body in (("/apis/rbac.authorization.k8s.io/v1/clusterroles", role),
                       ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)):
        try:
            kube.create(path, body)
        except KubeError as err:
            if err.status != 409:
                raise


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def prepare_api(kubeconfig: Path) -> None:
    """What must exist as soon as the apiserver answers, before CoreDNS and the kubelet start."""
    kube = Kube(kubeconfig)
    try:
        _ensure_coredns_rbac(kube)
        _ensure_storage_class(kube)
    finally:
        kube.close()


def bootstrap_cluster(kubeconfig: Path, settings: Settings, *, log: Callable[[str], None]) -> None:
    kube = Kube(kubeconfig)
    try:

        def nodes_ready() -> bool:
            nodes = kube.get("/api/v1/nodes", labelSelector="caxton.dev/process-kubelet=true")["items"]
            ready = [
                n for n in nodes
                if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
            ]
            return len(ready) >= settings.nodes

        log(f"waiting for {settings.nodes} process node(s) and the default ServiceAccount")
        _wait(f"{settings.nodes} Ready process node(s)", nodes_ready, 60)
        _wait("the default ServiceAccount",
              lambda: kube.get_or_none("/api/v1/namespaces/default/serviceaccounts/default") is not None, 60)
    finally:
        kube.close()
