"""Registers the process kubelet's Nodes and keeps them alive.

Without a renewed Lease (and a fresh Ready heartbeat) the node-lifecycle
controller marks a node NotReady and taints it after about 50 s.
"""

from __future__ import annotations

from caxton_kube import Kube, KubeError, Obj

from caxton_local.kubelet.runtime import rfc3339

LEASE_SECONDS = 40
NODE_LABEL = "caxton.dev/process-kubelet"


def _node_body(name: str, *, cpu: str, memory: str, pods: int, version: str) -> Obj:
    capacity = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                NODE_LABEL: "true",
            },
        },
        "spec": {},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def _conditions(now: str) -> list[Obj]:
    def cond(kind: str, status: str, reason: str, message: str) -> Obj:
        return {"type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": now}

    return [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True", "KubeletReady", "process kubelet is posting ready status"),
    ]


class NodeHeartbeat:
    """Creates the Node and its Lease, then renews both on `beat()`."""

    def __init__(self, kube: Kube, name: str, *, cpu: str, memory: str, pods: int, version: str,
                 port: int = 0) -> None:
        self.kube = kube
        self.name = name
        self.version = version
        self.port = port  # the kubelet API (container logs), see server.py
        self._body = _node_body(name, cpu=cpu, memory=memory, pods=pods, version=version)
        self._transition = rfc3339()

    def register(self) -> None:
        try:
            self.kube.create("/api/v1/nodes", self._body)
        except KubeError as err:
            if err.status != 409:
                raise
        self.beat()

    def beat(self) -> None:
        now = rfc3339()
        conditions = _conditions(now)
        for cond in conditions:
            cond["lastTransitionTime"] = self._transition
        status = {
            "conditions": conditions,
            "capacity": self._body["status"]["capacity"],
            "allocatable": self._body["status"]["allocatable"],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
            "nodeInfo": {
                "kubeletVersion": self.version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "process://caxton",
                "osImage": "caxton process kubelet",
                "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": "",
            },
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
        }
        self.kube.patch(f"/api/v1/nodes/{self.name}/status", {"status": status}, kind="strategic")
        self._renew_lease(now)

    def _renew_lease(self, now: str) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        micro = now.replace("Z", ".000000Z")
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": micro}
        try:
            self.kube.patch(path, {"spec": spec})
        except KubeError as err:
            if err.status != 404:
                raise
            node = self.kube.get(f"/api/v1/nodes/{self.name}")
            self.kube.create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {
                    "name": self.name, "namespace": "kube-node-lease",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": self.name,
                                         "uid": node["metadata"]["uid"]}],
                },
                "spec": spec,
            })

