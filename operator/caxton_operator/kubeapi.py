"""The operator's API access: one client, object paths, and create-or-apply helpers."""

from __future__ import annotations

import functools
import os
from typing import Any

from caxton_kube import Kube, KubeError

Obj = dict[str, Any]
__all__ = ["KubeError", "Obj", "apply", "client", "create_once", "get", "object_path", "owned"]
MANAGER = "caxton-operator"

_PLURALS = {"ConfigMap": "configmaps", "Secret": "secrets", "Service": "services",
            "StatefulSet": "statefulsets", "PodDisruptionBudget": "poddisruptionbudgets"}


@functools.cache
def client() -> Kube:
    return Kube(os.environ.get("KUBECONFIG") or None)


def object_path(obj: Obj) -> str:
    api = obj["apiVersion"]
    prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
    meta = obj["metadata"]
    return f"{prefix}/namespaces/{meta['namespace']}/{_PLURALS[obj['kind']]}/{meta['name']}"


def owned(obj: Obj, owner: Obj) -> Obj:
    meta = owner["metadata"]
    obj["metadata"]["ownerReferences"] = [{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"],
        "controller": True, "blockOwnerDeletion": True,
    }]
    return obj


def apply(obj: Obj) -> Obj:
    return client().apply(object_path(obj), obj, manager=MANAGER)


def get(obj_or_path: Obj | str) -> Obj | None:
    path = obj_or_path if isinstance(obj_or_path, str) else object_path(obj_or_path)
    return client().get_or_none(path)


def create_once(obj: Obj) -> Obj:
    """Creates `obj` unless it exists; returns what is stored (secrets are never regenerated).
    Create first: on a new cluster that is one round trip, not two."""
    path = object_path(obj).rsplit("/", 1)[0]
    try:
        return client().create(path, obj)
    except KubeError as err:
        if err.status != 409:
            raise
    stored = get(obj)
    if stored is None:  # deleted between our create and get: try once more
        return client().create(path, obj)
    return stored
