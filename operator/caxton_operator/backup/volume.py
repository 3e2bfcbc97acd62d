"""A `pvc://` destination, as the operator reaches it: a pod that mounts the claim and
serves it (`caxton backup serve`), written through the API server's pod proxy.

`volume_pod` is pure (the manifest); `PodStore` is the ObjectStore the backup
writes to, so S3 and volumes go through the same archive code.
"""

from __future__ import annotations

from typing import Any

import httpx
from caxton_node.backup.destinations import Destination

from caxton_operator import kubeapi
from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.resources.naming import Names
from caxton_operator.resources.nodeconfig import TOKEN_FILE

MOUNT = "/var/lib/caxton-backup"


class VolumeUnavailable(RuntimeError):
    """The volume pod did not answer, or refused (its `{code, message}`)."""


def pod_name(backup: str) -> str:
    return f"{backup}-volume"[:63].rstrip("-")


def volume_pod(backup: dict[str, Any], dest: Destination, cluster: CaxtonClusterSpec, names: Names,
               version: str) -> dict[str, Any]:
    """The pod serving `dest`'s directory, owned by the CaxtonBackup (collected with it)."""
    meta = backup["metadata"]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name(meta["name"]), "namespace": meta["namespace"],
                     "labels": {"app.kubernetes.io/name": "caxton-backup-volume",
                                "app.kubernetes.io/managed-by": "caxton-operator",
                                "caxton.dev/backup": meta["name"]},
                     "ownerReferences": [{"apiVersion": backup["apiVersion"], "kind": backup["kind"],
                                          "name": meta["name"], "uid": meta["uid"], "controller": True,
                                          "blockOwnerDeletion": True}]},
        "spec": {
            "restartPolicy": "Always",
            "containers": [{
                "name": "volume", "image": f"{cluster.image}:{version}",
                "command": ["caxton", "backup", "serve", "--dir", f"{MOUNT}/{dest.prefix}",
                            "--listen", "0.0.0.0:8080", "--token-file", TOKEN_FILE],
                "ports": [{"name": "api", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "api"}, "periodSeconds": 1},
                "volumeMounts": [{"name": "backup", "mountPath": MOUNT},
                                 {"name": "api-token", "mountPath": TOKEN_FILE.rsplit("/", 1)[0],
                                  "readOnly": True}],
            }],
            "volumes": [{"name": "backup", "persistentVolumeClaim": {"claimName": dest.where}},
                        {"name": "api-token", "secret": {"secretName": names.token, "defaultMode": 0o400}}],
        },
    }


class PodStore:
    """One backup's directory on the volume pod, through the pod proxy."""

    def __init__(self, namespace: str, pod: str, backup_id: str, token: str) -> None:
        self.base = f"/api/v1/namespaces/{namespace}/pods/{pod}:8080/proxy/objects/{backup_id}/"
        self.headers = {"X-Caxton-Token": token}
        self.where = f"{namespace}/{pod}"

    def _call(self, method: str, key: str, content: bytes | None = None,
              ok: tuple[int, ...] = (200,)) -> httpx.Response:
        try:
            resp = kubeapi.client().raw(method, self.base + key, content=content, headers=self.headers,
                                        timeout=120.0)
        except httpx.HTTPError as err:
            raise VolumeUnavailable(f"{self.where}: {method} {key}: {err}") from err
        if resp.status_code not in ok:
            raise VolumeUnavailable(f"{self.where}: {method} {key}: HTTP {resp.status_code} {resp.text[:200]}")
        return resp

    def put(self, key: str, data: bytes) -> None:
        self._call("POST", key, data)

    def get(self, key: str) -> bytes | None:
        resp = self._call("GET", key, ok=(200, 404))
        if resp.status_code == 200:
            return resp.content
        if b'"no_such_key"' in resp.content:  # the volume pod's answer; not the API server's own 404
            return None
        raise VolumeUnavailable(f"{self.where}: GET {key}: HTTP 404 {resp.text[:200]}")

    def list_keys(self) -> list[str]:
        return [str(k) for k in self._call("GET", "").json()]

    def delete(self, key: str) -> None:
        self._call("DELETE", key)
