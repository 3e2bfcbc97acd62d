"""DNS records for headless Services, served by CoreDNS's `hosts` plugin.

The API server refuses loopback addresses in EndpointSlices, so CoreDNS's
kubernetes plugin cannot learn our pods' 127.0.0.N addresses from them. The
kubelet knows them: it writes, in hosts-file form, what a real cluster's DNS
would answer for headless Services (`<svc>.<ns>.svc.<domain>`: the ready pods,
or all with publishNotReadyAddresses) and for their pods
(`<hostname>.<subdomain>.<ns>.svc.<domain>`). CoreDNS reloads it every second.
"""

from __future__ import annotations

from pathlib import Path

from caxton_kube import Kube, Obj


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def _selects(selector: dict[str, str], pod: Obj) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def hosts_lines(services: list[Obj], pods: list[Obj], domain: str) -> list[str]:
    lines = set()
    live = [p for p in pods if p.get("status", {}).get("podIP") and not p["metadata"].get("deletionTimestamp")]
    for svc in services:
        spec = svc.get("spec", {})
        if spec.get("clusterIP") != "None":
            continue
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        selector = spec.get("selector") or {}
        for pod in live:
            if pod["metadata"]["namespace"] != ns or not _selects(selector, pod):
                continue
            ip = pod["status"]["podIP"]
            if _ready(pod) or spec.get("publishNotReadyAddresses"):
                lines.add(f"{ip} {name}.{ns}.svc.{domain}")
            hostname, subdomain = pod["spec"].get("hostname"), pod["spec"].get("subdomain")
            if hostname and subdomain == name:
                lines.add(f"{ip} {hostname}.{name}.{ns}.svc.{domain}")
    return sorted(lines)


class DnsRecords:
    def __init__(self, kube: Kube, path: Path, domain: str) -> None:
        self.kube = kube
        self.path = path
        self.domain = domain
        self._last = ""

    def sync(self) -> None:
        services = self.kube.get("/api/v1/services")["items"]
        pods = self.kube.get("/api/v1/pods")["items"]
        text = "".join(line + "\n" for line in hosts_lines(services, pods, self.domain))
        if text == self._last and self.path.exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.path)
        self._last = text
