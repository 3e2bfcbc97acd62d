"""Real node processes for tests: `caxton server start` on a loopback address of its own."""

from __future__ import annotations

import base64
import itertools
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from caxton_local.kubelet.ipam import addresses_with_listeners
from caxton_node import pki

from tests.support.addresses import test_network
from tests.support.waiting import wait_for


def _free_addresses(prefix: str) -> Iterator[str]:
    """Addresses in `prefix`.10-254 that nothing listens on right now (another run may be using
    some), each handed out once per session so no test inherits another's leftovers."""
    for n in itertools.cycle(range(10, 255)):
        address = f"{prefix}.{n}"
        if address not in addresses_with_listeners():
            yield address


_ADDRESSES: dict[str, Iterator[str]] = {}


@dataclass
class NodeProcess:
    """One node: its directory (config, token, data, log) and, while running, its process."""

    node_id: str
    address: str
    root: Path
    extra_config: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # e.g. CAXTON_VERSION, as the image tag sets it
    proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://{self.address}:8080"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.address}:9090/metrics"

    @property
    def token_file(self) -> Path:
        return self.root / "token"

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def log_file(self) -> Path:
        return self.root / "node.log"

    def client(self, *, token: bool = True) -> httpx.Client:
        # While a token rotates the file holds several, one a line; clients send the first.
        headers = {"Authorization": f"Bearer {self.token_file.read_text().split()[0]}"} if token else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=30)

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.token_file.exists():
            self.token_file.write_text(secrets.token_urlsafe(24))
        config: dict[str, Any] = {
            "node": {"id": self.node_id, "data_dir": str(self.root / "data"),
                     "api_addr": f"{self.address}:8080", "metrics_addr": f"{self.address}:9090"},
            "security": {"api": {"token_file": str(self.token_file)}},
            # The default 10 ms wall-clock deadline trips on a loaded machine; tests that are about
            # deadlines set their own per agent.
            "agents": {"deadline": "5s"},
        }
        for key, value in self.extra_config.items():
            config.setdefault(key, {}).update(value)
        self.config_file.write_text(yaml.safe_dump(config))

    def start(self) -> None:
        self.write_config()
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "caxton_cli", "server", "start", "--config", str(self.config_file)],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
            )

        def healthy() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"node {self.node_id} exited:\n{self.log_file.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.api}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        # A loaded CI machine can take tens of seconds to import and start a node: wait generously.
        wait_for(healthy, timeout=120, what=f"node {self.node_id} to answer /healthz")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code


class NodeFactory:
    def __init__(self, root: Path, *, prefix: str = "") -> None:
        self.root = root
        prefix = prefix or f"{test_network()}.2"
        self.nodes: list[NodeProcess] = []
        self._addresses = _ADDRESSES.setdefault(prefix, _free_addresses(prefix))

    def __call__(self, node_id: str = "", *, start: bool = True, **extra: Any) -> NodeProcess:
        address = next(self._addresses)
        node_id = node_id or f"node-{address.rsplit('.', 1)[1]}"
        node = NodeProcess(node_id, address, self.root / node_id, extra_config=extra)
        self.nodes.append(node)
        if start:
            node.start()
        return node

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()



# -- clusters ----------------------------------------------------------------------------------

GOSSIP = {"gossip_interval": "100ms", "probe_interval": "500ms", "probe_timeout": "200ms",
          "suspicion_multiplier": 2}


def gossip_key(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "gossip.key"
    if not path.exists():
        path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    return path


def issue_node_cert(ca_dir: Path, node_id: str) -> dict[str, Any]:
    """mTLS settings for `node_id`, with a certificate from the CA in `ca_dir` (created if missing)."""
    ca_paths = (ca_dir / "ca.crt", ca_dir / "ca.key")
    if not ca_paths[0].exists():
        pki.new_ca(f"test-ca-{ca_dir.name}").write(*ca_paths)
    pki.issue(pki.KeyPair.read(*ca_paths), node_id).write(ca_dir / f"{node_id}.crt", ca_dir / f"{node_id}.key")
    return {"enabled": True, "ca_cert": str(ca_paths[0]), "node_cert": str(ca_dir / f"{node_id}.crt"),
            "node_key": str(ca_dir / f"{node_id}.key")}


def cluster_node(factory: NodeFactory, key: Path, seeds: list[str], expect: int, *,
                 ca_dir: Path | None = None, start: bool = True, version: str = "", **cluster: Any) -> NodeProcess:
    node = factory(start=False)
    if version:
        node.env["CAXTON_VERSION"] = version
    # One API token per cluster, as the operator does: members call each other's API.
    shared_token = key.with_name("api-token")
    if not shared_token.exists():
        shared_token.write_text(base64.b64encode(os.urandom(24)).decode())
    node.root.mkdir(parents=True, exist_ok=True)
    node.token_file.write_text(shared_token.read_text())
    security: dict[str, Any] = {"gossip_key_file": str(key)}
    if ca_dir is not None:
        security["mtls"] = issue_node_cert(ca_dir, node.node_id)
    node.extra_config["security"] = {"cluster": security}
    node.extra_config["coordination"] = {
        "cluster": {**GOSSIP, "seeds": seeds, "bootstrap_expect": expect, "bind_addr": f"{node.address}:7946",
                    **cluster},
        "partition": {"detection_timeout": "2s"},
    }
    if start:
        node.start()
    return node


def states(node: NodeProcess) -> dict[str, str]:
    with node.client() as client:
        members: list[dict[str, Any]] = client.get("/v1/cluster/members").json()
    return {m["id"]: m["state"] for m in members}


def wait_all_alive(nodes: list[NodeProcess]) -> None:
    ids = {n.node_id for n in nodes}
    for node in nodes:
        wait_for(lambda node=node: states(node) == dict.fromkeys(ids, "alive"),  # type: ignore[misc]
                 timeout=20, what=f"{node.node_id} to see {len(ids)} alive members")


def start_cluster(factory: NodeFactory, tmp_path: Path, size: int, *, mtls: bool = False) -> list[NodeProcess]:
    key = gossip_key(tmp_path / "keys")
    ca_dir = tmp_path / "ca" if mtls else None
    first = cluster_node(factory, key, [], size, ca_dir=ca_dir)
    seed = f"{first.address}:7946"
    nodes = [first] + [cluster_node(factory, key, [seed], size, ca_dir=ca_dir) for _ in range(size - 1)]
    wait_all_alive(nodes)
    return nodes
