"""Objects a fresh local cluster needs before workloads can run on it.

A default StorageClass named `standard` (kind's name, so manifests work on both)
served by the process kubelet's directory provisioner, and a wait for the
process nodes and the `default` ServiceAccount, without which pod creation fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from caxton_local.kube import Kube, KubeError
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


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def bootstrap_cluster(kubeconfig: Path, settings: Settings, *, log: Callable[[str], None]) -> None:
    kube = Kube(kubeconfig)
    try:
        _ensure_storage_class(kube)

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
