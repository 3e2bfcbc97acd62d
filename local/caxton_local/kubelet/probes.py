"""Readiness, liveness and startup probes (httpGet, tcpSocket, exec) with their timing."""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass, field

import httpx
from caxton_kube import Obj


def resolve_port(port: int | str, container: Obj) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"container has no port named {port!r}")


def http_get_url(get: Obj, *, pod_ip: str, container: Obj) -> str:
    """The URL of an httpGet probe or hook (host defaults to the pod's address)."""
    port = resolve_port(get["port"], container)
    scheme = get.get("scheme", "HTTP").lower()
    return f"{scheme}://{get.get('host') or pod_ip}:{port}{get.get('path', '/')}"


def run_probe(probe: Obj, *, pod_ip: str, container: Obj, pid: int | None, env: dict[str, str]) -> tuple[bool, str]:
    """One probe attempt: (success, message for events and status)."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            get = probe["httpGet"]
            url = http_get_url(get, pod_ip=pod_ip, container=container)
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
            resp = httpx.get(url, headers=headers, timeout=timeout, verify=False)
            ok = 200 <= resp.status_code < 400
            return ok, f"HTTP probe failed with statuscode: {resp.status_code}" if not ok else ""
        if "tcpSocket" in probe:
            port = resolve_port(probe["tcpSocket"]["port"], container)
            with socket.create_connection((probe["tcpSocket"].get("host") or pod_ip, port), timeout=timeout):
                return True, ""
        if "exec" in probe:
            if pid is None:
                return False, "container is not running"
            # Enter the container's mount and UTS namespaces so the command sees its volumes.
            argv = ["nsenter", "-t", str(pid), "-m", "-u", "--", *probe["exec"]["command"]]
            result = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, text=True)
            return result.returncode == 0, (result.stdout + result.stderr).strip()[-500:]
        return False, "probe type not supported by the process kubelet"
    except (OSError, httpx.HTTPError, subprocess.TimeoutExpired, ValueError) as err:
        return False, f"probe failed: {err}"


@dataclass
class ProbeState:
    """Tracks one probe of one container: when it is due and its consecutive results."""

    probe: Obj
    started_at: float
    successes: int = 0
    failures: int = 0
    result: bool | None = None  # None until the thresholds decide
    message: str = ""
    next_at: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.next_at = self.started_at + float(self.probe.get("initialDelaySeconds", 0))

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, ok: bool, message: str, now: float) -> None:
        self.next_at = now + float(self.probe.get("periodSeconds", 10))
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= int(self.probe.get("successThreshold", 1)):
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            self.message = message
            if self.failures >= int(self.probe.get("failureThreshold", 3)):
                self.result = False

