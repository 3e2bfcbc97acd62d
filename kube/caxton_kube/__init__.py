"""A small Kubernetes REST client shared by the operator, the `kubectl caxton` plugin
and the local control plane: raw API objects in and out, credentials from a kubeconfig
or the pod's service account, and nothing else (the shipped packages depend on this,
never on the dev tooling in `caxton_local`)."""

from caxton_kube.client import Kube, KubeError, Obj

__all__ = ["Kube", "KubeError", "Obj"]
