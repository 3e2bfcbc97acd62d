"""The names and labels of everything the operator creates for one CaxtonCluster."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    cluster: str
    namespace: str
    domain: str = "cluster.local"

    @property
    def statefulset(self) -> str:
        return self.cluster

    @property
    def peers_service(self) -> str:
        """Headless: gives each pod a stable DNS name for gossip and peer traffic."""
        return f"{self.cluster}-peers"

    @property
    def api_service(self) -> str:
        return self.cluster

    @property
    def config(self) -> str:
        return f"{self.cluster}-config"

    @property
    def ca(self) -> str:
        return f"{self.cluster}-ca"

    @property
    def tls(self) -> str:
        return f"{self.cluster}-tls"

    @property
    def gossip(self) -> str:
        return f"{self.cluster}-gossip"

    @property
    def token(self) -> str:
        return f"{self.cluster}-api-token"

    def pod(self, ordinal: int) -> str:
        return f"{self.cluster}-{ordinal}"

    def peer_address(self, ordinal: int) -> str:
        return f"{self.pod(ordinal)}.{self.peers_service}.{self.namespace}.svc.{self.domain}:7946"

    @property
    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": "caxton", "app.kubernetes.io/instance": self.cluster}

    @property
    def labels(self) -> dict[str, str]:
        return {**self.selector, "app.kubernetes.io/managed-by": "caxton-operator"}
