"""A small Kubernetes REST client shared by the operator, the `kubectl caxton` plugin
and the local control plane: raw API objects in and out, credentials from a kubeconfig
or the pod's service account, and nothing else (the shipped packages depend on this,
never on the dev tooling in `caxton_local`).

`Kube` (httpx, pooled, for long-running processes) is imported on first use, so a
one-shot command can use `caxton_kube.oneshot` without loading httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from caxton_kube.errors import KubeError, KubeUnreachable, Obj

if TYPE_CHECKING:
    from caxton_kube.client import Kube

__all__ = ["Kube", "KubeError", "KubeUnreachable", "Obj"]


def __getattr__(name: str) -> object:
    if name == "Kube":
        from caxton_kube.client import Kube

        return Kube
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
