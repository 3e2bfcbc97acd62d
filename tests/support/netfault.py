"""Real network partitions between loopback addresses, cut with iptables.

Rules live in a chain of their own, hooked into INPUT (loopback traffic passes
it), so teardown removes exactly what the test added, even when the test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable


def iptables_available() -> str:
    """Empty if usable, else why not."""
    if os.geteuid() != 0:
        return "iptables needs root"
    if shutil.which("iptables") is None:
        return "iptables is not installed (apt-get install iptables)"
    probe = subprocess.run(["iptables", "-w", "-L", "INPUT", "-n"], capture_output=True, text=True)
    return "" if probe.returncode == 0 else f"iptables does not work here: {probe.stderr.strip()}"


class NetworkPartition:
    def __init__(self) -> None:
        self.chain = f"CAXTON-TEST-{os.getpid()}"
        self._run("-N", self.chain)
        self._run("-I", "INPUT", "-j", self.chain)

    def _run(self, *args: str) -> None:
        subprocess.run(["iptables", "-w", *args], check=True, capture_output=True)

    def cut(self, side_a: Iterable[str], side_b: Iterable[str]) -> None:
        """Drops every packet between an address of side A and one of side B, both ways."""
        side_b = list(side_b)
        for a in side_a:
            for b in side_b:
                self._run("-A", self.chain, "-s", a, "-d", b, "-j", "DROP")
                self._run("-A", self.chain, "-s", b, "-d", a, "-j", "DROP")

    def refuse(self, address: str, port: int) -> None:
        """Resets every TCP connection to address:port, from anywhere (the API server too):
        the listener looks gone without the process stopping."""
        self._run("-A", self.chain, "-d", address, "-p", "tcp", "--dport", str(port), "-j", "REJECT",
                  "--reject-with", "tcp-reset")

    def drop(self, source: str, destination: str, *, protocol: str = "all", source_port: int = 0) -> None:
        """Drops packets from `source` to `destination` only (one direction), e.g. protocol="udp"
        for gossip alone, or protocol="tcp", source_port=7946 for what a peer-channel server
        answers (its acks) while the frames sent to it still arrive."""
        port = ["--sport", str(source_port)] if source_port else []
        self._run("-A", self.chain, "-s", source, "-d", destination, "-p", protocol, *port, "-j", "DROP")

    def heal(self) -> None:
        self._run("-F", self.chain)

    def remove(self) -> None:
        subprocess.run(["iptables", "-w", "-D", "INPUT", "-j", self.chain], capture_output=True)
        subprocess.run(["iptables", "-w", "-F", self.chain], capture_output=True)
        subprocess.run(["iptables", "-w", "-X", self.chain], capture_output=True)
