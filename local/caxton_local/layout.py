"""Where a local control plane keeps its state, and the settings it was created with.

Everything of one instance lives below one directory (default
`~/.local/state/caxton/local`, or `$CAXTON_LOCAL_DIR`), so `down --purge` is one
`rm -rf` and two instances never share a file.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path


def default_state_dir() -> Path:
    env = os.environ.get("CAXTON_LOCAL_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "caxton" / "local"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Ports:
    apiserver: int = 6443
    etcd_client: int = field(default_factory=free_port)
    etcd_peer: int = field(default_factory=free_port)
    controller_manager: int = field(default_factory=free_port)
    scheduler: int = field(default_factory=free_port)
    kubelet: int = field(default_factory=free_port)  # the kubelet API (container logs), on 127.0.0.1


@dataclass
class Settings:
    """Chosen at the first `up` and kept, so restarts reuse ports and addresses."""

    ports: Ports = field(default_factory=Ports)
    nodes: int = 3
    node_cpu: str = "16"
    node_memory: str = "32Gi"
    node_pods: int = 110
    # The kubelet's crash back-off starts here and doubles up to five minutes.
    crash_backoff_seconds: float = 10.0
    # Pod addresses come from this loopback range (first and last host included).
    pod_ip_first: str = "127.0.0.2"
    pod_ip_last: str = "127.0.0.254"
    service_cidr: str = "10.96.0.0/16"
    # Cluster DNS (CoreDNS) listens on this address, port 53 (resolv.conf has no ports), so each
    # instance needs its own; it lies outside the pod ranges.
    dns_ip: str = "127.0.53.1"
    cluster_domain: str = "cluster.local"


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def dns_hosts(self) -> Path:
        return self.root / "dns" / "hosts"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def settings_file(self) -> Path:
        return self.root / "settings.json"

    def kubeconfig(self, user: str = "admin") -> Path:
        return self.root / f"{user}.kubeconfig"

    def pidfile(self, component: str) -> Path:
        return self.run / f"{component}.pid"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def load_settings(self) -> Settings | None:
        try:
            raw = json.loads(self.settings_file.read_text())
        except FileNotFoundError:
            return None
        ports = Ports(**raw.pop("ports"))
        return Settings(ports=ports, **raw)

    def save_settings(self, settings: Settings) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.settings_file.write_text(json.dumps(asdict(settings), indent=2) + "\n")
