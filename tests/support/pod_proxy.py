"""A CaxtonCluster's node API through the API server's pod proxy, as the operator and the
plugin reach it: what the end-to-end tests use to look inside the nodes."""

from __future__ import annotations

import base64
from typing import Any

from tests.support.cluster import ClusterUnderTest


class NodeProxy:
    def __init__(self, cluster: ClusterUnderTest, ns: str, name: str = "demo") -> None:
        self.cluster, self.ns = cluster, ns
        secret = cluster.kube.get(f"/api/v1/namespaces/{ns}/secrets/{name}-api-token")
        # The first line: while the token rotates, the Secret holds the new one and the old one.
        self.token = base64.b64decode(secret["data"]["token"]).decode().split()[0]
        self.headers = {"X-Caxton-Token": self.token}

    def call(self, pod: str, method: str, path: str, **kwargs: Any) -> Any:
        """The answer's JSON (None for an empty body); anything but a 2xx fails the test."""
        kwargs.setdefault("timeout", 30)
        resp = self.cluster.kube.raw(method, f"/api/v1/namespaces/{self.ns}/pods/{pod}:8080/proxy{path}",
                                     headers=self.headers, **kwargs)
        assert resp.status_code < 300, f"{method} {pod}{path}: {resp.status_code} {resp.text[:300]}"
        return resp.json() if resp.content else None
