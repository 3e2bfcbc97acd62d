"""Small workloads for the process-kubelet tests."""

from __future__ import annotations

from typing import Any

import yaml


def _pod_env() -> list[dict[str, Any]]:
    return [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
    ]


def web_statefulset(name: str, replicas: int, *, script: str, with_pvc: bool = False) -> str:
    """Pods that run `script` (sh) and then serve /data over HTTP on :8080."""
    volumes = [] if with_pvc else [{"name": "data", "emptyDir": {}}]
    spec: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name, "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "web", "image": "python:3.11",
                        "command": ["sh", "-c", f"{script}; exec python3 -m http.server 8080 --directory /data"],
                        "env": _pod_env(),
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }],
                    "volumes": volumes,
                },
            },
        },
    }
    if with_pvc:
        spec["spec"]["volumeClaimTemplates"] = [{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
        }]
    return yaml.safe_dump(spec)


def pod(name: str, *, image: str, command: list[str], restart_policy: str = "Always") -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart_policy,
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "main", "image": image, "command": command, "env": _pod_env()}],
        },
    })
