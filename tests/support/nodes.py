"""Real node processes for tests: `caxton server start` on a loopback address of its own."""

from __future__ import annotations

import itertools
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.waiting import wait_for

_addresses = (f"127.0.2.{n}" for n in itertools.count(10))


@dataclass
class NodeProcess:
    """One node: its directory (config, token, data, log) and, while running, its process."""

    node_id: str
    address: str
    root: Path
    extra_config: dict[str, Any] = field(default_factory=dict)
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
        headers = {"Authorization": f"Bearer {self.token_file.read_text().strip()}"} if token else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=30)

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.token_file.exists():
            self.token_file.write_text(secrets.token_urlsafe(24))
        config: dict[str, Any] = {
            "node": {"id": self.node_id, "data_dir": str(self.root / "data"),
                     "api_addr": f"{self.address}:8080", "metrics_addr": f"{self.address}:9090"},
            "security": {"api": {"token_file": str(self.token_file)}},
        }
        for key, value in self.extra_config.items():
            config.setdefault(key, {}).update(value)
        self.config_file.write_text(yaml.safe_dump(config))

    def start(self) -> None:
        self.write_config()
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "caxton_cli", "server", "start", "--config", str(self.config_file)],
                stdout=log, stderr=subprocess.STDOUT,
            )

        def healthy() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"node {self.node_id} exited:\n{self.log_file.read_text()[-3000:]}")
            try:
                return httpx.get(f"{self.api}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=30, what=f"node {self.node_id} to answer /healthz")

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
    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[NodeProcess] = []

    def __call__(self, node_id: str = "", *, start: bool = True, **extra: Any) -> NodeProcess:
        address = next(_addresses)
        node_id = node_id or f"node-{address.rsplit('.', 1)[1]}"
        node = NodeProcess(node_id, address, self.root / node_id, extra_config=extra)
        self.nodes.append(node)
        if start:
            node.start()
        return node

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()

