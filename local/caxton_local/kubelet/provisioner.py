"""Dynamic provisioning of directory-backed PersistentVolumes.

Claims of the `standard` StorageClass (provisioner caxton.dev/local-dir) get a
hostPath PV under `<state-dir>/volumes/`; the PV controller then binds them.
Released volumes with reclaimPolicy Delete are removed with their directory, so
data lives exactly as long as the claim, as with a real provisioner.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from caxton_kube import Kube, KubeError, Obj

from caxton_local.bootstrap import PROVISIONER

log = logging.getLogger("caxton.kubelet.provisioner")


class DirectoryProvisioner:
    def __init__(self, kube: Kube, root: Path) -> None:
        self.kube = kube
        self.root = root

    def _ours(self, pvc: Obj) -> bool:
        annotations = pvc["metadata"].get("annotations") or {}
        return PROVISIONER in (
            annotations.get("volume.kubernetes.io/storage-provisioner"),
            annotations.get("volume.beta.kubernetes.io/storage-provisioner"),
        )

    def sync(self) -> None:
        claims = self.kube.get("/api/v1/persistentvolumeclaims")["items"]
        for pvc in claims:
            if pvc.get("status", {}).get("phase") == "Pending" and self._ours(pvc) \
                    and not pvc["spec"].get("volumeName"):
                self._provision(pvc)
        for pv in self.kube.get("/api/v1/persistentvolumes")["items"]:
            annotations = pv["metadata"].get("annotations") or {}
            if annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
                continue
            if pv.get("status", {}).get("phase") == "Released" and \
                    pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
                path = Path(pv["spec"]["hostPath"]["path"])
                if path.is_relative_to(self.root):
                    shutil.rmtree(path, ignore_errors=True)
                self.kube.delete(f"/api/v1/persistentvolumes/{pv['metadata']['name']}")
                log.info("deleted released volume %s", pv["metadata"]["name"])

    def _provision(self, pvc: Obj) -> None:
        meta = pvc["metadata"]
        name = f"pvc-{meta['uid']}"
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        storage_class = pvc["spec"].get("storageClassName", "")
        reclaim = "Delete"
        if storage_class:
            sc = self.kube.get_or_none(f"/apis/storage.k8s.io/v1/storageclasses/{storage_class}")
            reclaim = (sc or {}).get("reclaimPolicy", "Delete")
        body = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {
                "capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]},
                "accessModes": pvc["spec"].get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": reclaim,
                "storageClassName": storage_class,
                "volumeMode": pvc["spec"].get("volumeMode", "Filesystem"),
                "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                "claimRef": {
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
                },
            },
        }
        try:
            self.kube.create("/api/v1/persistentvolumes", body)
            log.info("provisioned %s for %s/%s at %s", name, meta["namespace"], meta["name"], path)
        except KubeError as err:
            if err.status != 409:
                raise
