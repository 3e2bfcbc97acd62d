"""The kubelet loop: watch the pods bound to our Nodes and keep one worker per pod.

A watch wakes the loop as soon as something changes; a resync every few seconds
(and after each watch times out) makes sure nothing is missed. Heartbeats and the
volume provisioner run on the same loop, each on its own period.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

from caxton_kube import Kube, KubeError, Obj

from caxton_local.kubelet.dnsrecords import DnsRecords
from caxton_local.kubelet.images import ImageTable
from caxton_local.kubelet.ipam import LoopbackIPAM
from caxton_local.kubelet.nodes import NodeHeartbeat
from caxton_local.kubelet.podnet import shim_path
from caxton_local.kubelet.provisioner import DirectoryProvisioner
from caxton_local.kubelet.runtime import PodWorker, RuntimeConfig, kill_orphaned_pods
from caxton_local.kubelet.server import KubeletServer
from caxton_local.layout import Layout, Settings

log = logging.getLogger("caxton.kubelet")

HEARTBEAT_PERIOD = 10.0
RESYNC_PERIOD = 5.0
PROVISION_PERIOD = 1.0


class Kubelet:
    def __init__(self, layout: Layout, settings: Settings, kubeconfig: Path) -> None:
        self.layout = layout
        self.settings = settings
        self.kube = Kube(kubeconfig)
        self.node_names = [f"local-{i + 1}" for i in range(settings.nodes)]
        version = self.kube.get("/version").get("gitVersion", "v0.0.0")
        self.heartbeats = [
            NodeHeartbeat(self.kube, name, cpu=settings.node_cpu, memory=settings.node_memory,
                          pods=settings.node_pods, version=version, port=settings.ports.kubelet)
            for name in self.node_names
        ]
        self.ipam = LoopbackIPAM(layout.kubelet / "ipam.json", settings.pod_ip_first, settings.pod_ip_last)
        self.images = ImageTable(layout.root / "images.yaml")
        self.provisioner = DirectoryProvisioner(self.kube, layout.volumes)
        self.dns = DnsRecords(self.kube, layout.dns_hosts, settings.cluster_domain)
        self.config = RuntimeConfig(
            node_name="", apiserver_port=settings.ports.apiserver,
            crash_backoff=settings.crash_backoff_seconds, shim=shim_path(), layout=layout,
            dns_ip=settings.dns_ip, cluster_domain=settings.cluster_domain,
        )
        self.workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake = threading.Event()

        pki = layout.pki
        self.server = KubeletServer(settings.ports.kubelet, self.find_log, cert=pki / "kubelet-serving.crt",
                                    key=pki / "kubelet-serving.key", client_ca=pki / "ca.crt")

    # -- pods -----------------------------------------------------------------

    def find_log(self, namespace: str, pod: str, container: str, previous: bool) -> tuple[Path, int] | str:
        """The log a `kubectl logs` call means (the kubelet API's container-logs endpoint)."""
        with self._lock:
            worker = next((w for w in self.workers.values() if w.key == f"{namespace}/{pod}"), None)
        if worker is None:
            return f"pod {namespace}/{pod} is not running on this kubelet"
        run = worker.log_run(container, previous=previous)
        if run is None:
            if previous:
                return f'previous terminated container "{container}" in pod "{pod}" not found'
            return f'container "{container}" in pod "{pod}" is waiting to start'
        return worker.log_dir(container), run

    def _worker_done(self, worker: PodWorker) -> None:
        with self._lock:
            if self.workers.get(worker.uid) is worker:
                del self.workers[worker.uid]
        self._wake.set()

    def _ours(self, pod: Obj) -> bool:
        return pod["spec"].get("nodeName") in self.node_names

    def sync_pods(self) -> None:
        pods = [p for p in self.kube.get("/api/v1/pods")["items"] if self._ours(p)]
        seen = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            self._handle(pod)
        with self._lock:
            gone = [w for uid, w in self.workers.items() if uid not in seen]
        for worker in gone:
            worker.request_stop()
        # Addresses of pods that vanished while no worker held them.
        with self._lock:
            active = set(self.workers)
        for uid in self.ipam.owners():
            if uid not in seen and uid not in active:
                self.ipam.release(uid)

    def _handle(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        phase = pod.get("status", {}).get("phase")
        with self._lock:
            worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        if phase in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
            return
        if pod["metadata"].get("deletionTimestamp") and not pod.get("status", {}).get("podIP"):
            # Never started here: nothing to stop, just confirm the deletion.
            self.kube.delete(f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}",
                             {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
            return
        worker = PodWorker(self.kube, pod, config=self.config, ipam=self.ipam, images=self.images,
                           on_exit=self._worker_done)
        with self._lock:
            self.workers[uid] = worker
        worker.start()
        if pod["metadata"].get("deletionTimestamp"):
            worker.request_stop()

    def _watch(self) -> None:
        while not self._stopping.is_set():
            try:
                listing = self.kube.get("/api/v1/pods", limit=1)
                rv = listing["metadata"]["resourceVersion"]
                for event in self.kube.watch("/api/v1/pods", resource_version=rv, timeout_seconds=60):
                    if self._stopping.is_set():
                        return
                    obj = event.get("object", {})
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED") and self._ours(obj):
                        self._wake.set()
            except Exception as err:
                log.warning("pod watch interrupted: %s", err)
                self._stopping.wait(1.0)

    # -- main loop --------------------------------------------------------------

    def run(self) -> None:
        killed = kill_orphaned_pods(self.layout)
        if killed:
            log.info("stopped %d container process(es) left by a previous kubelet", killed)
        for hb in self.heartbeats:
            hb.register()
        threading.Thread(target=self._watch, name="pod-watch", daemon=True).start()
        self.server.start()
        last_beat = last_sync = last_provision = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            try:
                if now - last_beat >= HEARTBEAT_PERIOD:
                    for hb in self.heartbeats:
                        hb.beat()
                    last_beat = now
                if now - last_provision >= PROVISION_PERIOD:
                    self.provisioner.sync()
                    self.dns.sync()
                    last_provision = now
                if self._wake.is_set() or now - last_sync >= RESYNC_PERIOD:
                    self._wake.clear()
                    self.sync_pods()
                    last_sync = now
            except (KubeError, OSError) as err:
                log.warning("sync failed: %s", err)
            except Exception:
                log.exception("sync failed")
            self._wake.wait(0.5)
        self._shutdown()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _shutdown(self) -> None:
        """Stops every container (the pods stay bound; a restarted kubelet starts them again)."""
        with self._lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.request_stop()
        for worker in workers:
            worker.join(timeout=40)
        kill_orphaned_pods(self.layout)
        self.server.stop()
        self.kube.close()


def run(layout: Layout, kubeconfig: Path) -> None:
    settings = layout.load_settings() or Settings()
    kubelet = Kubelet(layout, settings, kubeconfig)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping pods", signum)
        kubelet.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    kubelet.run()
