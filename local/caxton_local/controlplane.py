"""The local Kubernetes control plane: etcd, kube-apiserver, controller-manager,
scheduler and the process kubelet, started on loopback as daemons.

`up` is idempotent: it starts whatever is not running and waits until each part
answers its health check. `down` stops the apiserver before etcd (the other
order hangs the apiserver) and the kubelet first, so no pod process outlives it.
"""

from __future__ import annotations

import json
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from caxton_node.system import rss_bytes

from caxton_local import procs, toolchain
from caxton_local.bootstrap import bootstrap_cluster, prepare_api
from caxton_local.certs import ensure_pki, write_kubeconfigs
from caxton_local.layout import Layout, Settings


class ControlPlaneError(RuntimeError):
    """A component did not come up; the message names it and points at its log."""


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    health_url: str
    env: dict[str, str] | None = None


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    healthy: bool
    rss_bytes: int
    address: str

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "pid": self.pid, "healthy": self.healthy,
            "rssBytes": self.rss_bytes, "address": self.address,
        }


class ControlPlane:
    """One local control plane instance rooted at `layout.root`."""

    def __init__(self, layout: Layout, settings: Settings | None = None) -> None:
        self.layout = layout
        self.settings = layout.load_settings() or settings or Settings()

    # -- addresses ---------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.settings.ports.apiserver}"

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig("admin")

    def _ssl_context(self) -> ssl.SSLContext:
        pki_dir = self.layout.pki
        ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        ctx.load_cert_chain(pki_dir / "admin.crt", pki_dir / "admin.key")
        return ctx

    # -- components --------------------------------------------------------------

    def components(self, binaries: dict[str, Path]) -> list[Component]:
        s, p, d = self.settings, self.settings.ports, self.layout.pki
        etcd_client = f"http://127.0.0.1:{p.etcd_client}"
        etcd_peer = f"http://127.0.0.1:{p.etcd_peer}"
        requestheader = [
            f"--requestheader-client-ca-file={d / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-username-headers=X-Remote-User",
        ]

        def kcfg(user: str) -> list[str]:
            path = self.layout.kubeconfig(user)
            return [
                f"--kubeconfig={path}",
                f"--authentication-kubeconfig={path}",
                f"--authorization-kubeconfig={path}",
            ]

        return [
            Component(
                "etcd",
                [
                    str(binaries["etcd"]), "--name=local",
                    f"--data-dir={self.layout.etcd_data}",
                    f"--listen-client-urls={etcd_client}",
                    f"--advertise-client-urls={etcd_client}",
                    f"--listen-peer-urls={etcd_peer}",
                    f"--initial-advertise-peer-urls={etcd_peer}",
                    f"--initial-cluster=local={etcd_peer}",
                    # A throwaway local cluster: trading crash durability for speed is right.
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
                f"{etcd_client}/health",
            ),
            Component(
                "kube-apiserver",
                [
                    str(binaries["kube-apiserver"]),
                    f"--etcd-servers={etcd_client}",
                    "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                    f"--secure-port={p.apiserver}",
                    f"--tls-cert-file={d / 'apiserver.crt'}",
                    f"--tls-private-key-file={d / 'apiserver.key'}",
                    f"--client-ca-file={d / 'ca.crt'}",
                    "--authorization-mode=Node,RBAC",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={d / 'sa.pub'}",
                    f"--service-account-signing-key-file={d / 'sa.key'}",
                    f"--service-cluster-ip-range={s.service_cidr}",
                    *requestheader,
                    f"--proxy-client-cert-file={d / 'front-proxy-client.crt'}",
                    f"--proxy-client-key-file={d / 'front-proxy-client.key'}",
                    # pods/log and exec go to the process kubelet's API on the Nodes' InternalIP.
                    "--kubelet-preferred-address-types=InternalIP",
                    f"--kubelet-certificate-authority={d / 'ca.crt'}",
                    f"--kubelet-client-certificate={d / 'apiserver-kubelet-client.crt'}",
                    f"--kubelet-client-key={d / 'apiserver-kubelet-client.key'}",
                    # Loopback endpoints are invalid, so the apiserver must not publish its own.
                    "--endpoint-reconciler-type=none",
                    "--allow-privileged=true",
                    "--profiling=false",
                ],
                f"{self.server}/readyz",
            ),
            Component(
                "kube-controller-manager",
                [
                    str(binaries["kube-controller-manager"]), *kcfg("controller-manager"),
                    "--bind-address=127.0.0.1", f"--secure-port={p.controller_manager}",
                    "--controllers=*",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={d / 'sa.key'}",
                    f"--root-ca-file={d / 'ca.crt'}",
                    f"--cluster-signing-cert-file={d / 'ca.crt'}",
                    f"--cluster-signing-key-file={d / 'ca.key'}",
                    f"--service-cluster-ip-range={s.service_cidr}",
                    "--leader-elect=false",
                ],
                f"https://127.0.0.1:{p.controller_manager}/healthz",
            ),
            Component(
                "kube-scheduler",
                [
                    str(binaries["kube-scheduler"]), *kcfg("scheduler"),
                    "--bind-address=127.0.0.1", f"--secure-port={p.scheduler}",
                    "--leader-elect=false",
                ],
                f"https://127.0.0.1:{p.scheduler}/healthz",
            ),
            Component(
                "coredns",
                [str(binaries["coredns"]), "-conf", str(self.layout.root / "Corefile"),
                 "-dns.port", "53"],
                f"http://{s.dns_ip}:8181/ready",
            ),
            Component(
                "kubelet",
                [
                    sys.executable, "-m", "caxton_local.kubelet",
                    f"--state-dir={self.layout.root}",
                    f"--kubeconfig={self.layout.kubeconfig('kubelet')}",
                ],
                "",
            ),
        ]

    def _write_corefile(self) -> None:
        s = self.settings
        # Headless Services' records come from the kubelet (kubelet/dnsrecords.py): the API
        # refuses loopback pod addresses in EndpointSlices.
        self.layout.dns_hosts.parent.mkdir(parents=True, exist_ok=True)
        self.layout.dns_hosts.touch()
        (self.layout.root / "Corefile").write_text(f"""\
.:53 {{
    bind {s.dns_ip}
    errors
    ready {s.dns_ip}:8181
    hosts {self.layout.dns_hosts} {s.cluster_domain} {{
        reload 1s
        fallthrough
    }}
    kubernetes {s.cluster_domain} in-addr.arpa ip6.arpa {{
        kubeconfig {self.layout.kubeconfig("coredns")} caxton-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    forward . /etc/resolv.conf
    cache 5
}}
""")

    def _healthy(self, component: Component) -> bool:
        if not component.health_url:
            return procs.read_pidfile(self.layout.pidfile(component.name)) is not None
        ctx: ssl.SSLContext | None = None
        if component.health_url.startswith("https://"):
            ctx = self._ssl_context()
            if component.name != "kube-apiserver":
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(component.health_url, timeout=2, context=ctx) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _wait_healthy(self, component: Component, timeout: float) -> float:
        started = time.monotonic()
        pidfile = self.layout.pidfile(component.name)
        while time.monotonic() - started < timeout:
            if self._healthy(component):
                return time.monotonic() - started
            if procs.read_pidfile(pidfile) is None:
                raise ControlPlaneError(
                    f"{component.name} exited during start-up; see {self.layout.log(component.name)}:\n"
                    + _tail(self.layout.log(component.name))
                )
            time.sleep(0.1)
        raise ControlPlaneError(
            f"{component.name} not healthy after {timeout:.0f}s; see {self.layout.log(component.name)}"
        )

    # -- lifecycle ---------------------------------------------------------------

    def up(self, *, log: Callable[[str], None] = print) -> dict[str, float]:
        """Starts what is not running; returns seconds to healthy for each started part."""
        layout = self.layout
        layout.root.mkdir(parents=True, exist_ok=True)
        if layout.load_settings() is None:
            layout.save_settings(self.settings)
        binaries = toolchain.build_all(log=log)
        layout.bin.mkdir(exist_ok=True)
        for name, path in binaries.items():
            link = layout.bin / name
            link.unlink(missing_ok=True)
            link.symlink_to(path)
        ensure_pki(layout)
        write_kubeconfigs(layout, self.server)
        self._write_corefile()
        timings: dict[str, float] = {}
        for component in self.components(binaries):
            pidfile = layout.pidfile(component.name)
            if procs.read_pidfile(pidfile) is not None and self._healthy(component):
                if component.name == "kube-apiserver":
                    prepare_api(self.kubeconfig)
                continue
            procs.stop_pidfile(pidfile, grace=5)
            log(f"starting {component.name}")
            procs.start_daemon(
                component.argv, log_path=layout.log(component.name), pid_path=pidfile,
                env=component.env,
            )
            timings[component.name] = self._wait_healthy(component, timeout=90)
            if component.name == "kube-apiserver":
                prepare_api(self.kubeconfig)
        bootstrap_cluster(self.kubeconfig, self.settings, log=log)
        return timings

    def down(self, *, purge: bool = False, log: Callable[[str], None] = print) -> None:
        # Kubelet first (it stops the pods), then the controllers, then apiserver before etcd.
        for name in ("kubelet", "coredns", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            if procs.stop_pidfile(self.layout.pidfile(name), grace=20):
                log(f"stopped {name}")
        from caxton_local.kubelet.runtime import kill_orphaned_pods

        killed = kill_orphaned_pods(self.layout)
        if killed:
            log(f"stopped {killed} leftover pod process(es)")
        if purge:
            shutil.rmtree(self.layout.root, ignore_errors=True)
            log(f"removed {self.layout.root}")

    def status(self) -> list[ComponentStatus]:
        binaries = {name: Path(name) for tool in toolchain.ALL_TOOLS for name in tool.packages}
        result = []
        for component in self.components(binaries):
            pid = procs.read_pidfile(self.layout.pidfile(component.name))
            address = component.health_url.rsplit("/", 1)[0] if component.health_url else "-"
            result.append(ComponentStatus(
                name=component.name, pid=pid,
                healthy=pid is not None and self._healthy(component),
                rss_bytes=rss_bytes(pid) if pid else 0, address=address,
            ))
        return result

    def describe(self) -> dict[str, object]:
        return {
            "stateDir": str(self.layout.root),
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "components": [c.as_dict() for c in self.status()],
            "settings": json.loads(self.layout.settings_file.read_text())
            if self.layout.settings_file.exists() else None,
        }


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
