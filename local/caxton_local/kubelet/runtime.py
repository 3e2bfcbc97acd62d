"""Pod workers: one thread per pod that runs its containers as local processes.

A worker owns everything about its pod: volumes, the init containers in order,
the containers with their probes and restarts (CrashLoopBackOff doubling from the
configured base to five minutes), graceful termination (preStop, SIGTERM, grace
period, SIGKILL) and the pod's status, which it patches only when it changed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from caxton_kube import Kube, KubeError, Obj

from caxton_local import procs
from caxton_local.kubelet.environment import container_env, expand, kubelet_env
from caxton_local.kubelet.images import ImagePullError, ImageTable, ResolvedImage, which
from caxton_local.kubelet.ipam import LoopbackIPAM
from caxton_local.kubelet.logs import LogWriter
from caxton_local.kubelet.probes import ProbeState, http_get_url, run_probe
from caxton_local.kubelet.volumes import Mount, VolumeBuilder, VolumeNotReady, container_mounts
from caxton_local.layout import Layout

log = logging.getLogger("caxton.kubelet")

MAX_BACKOFF = 300.0
BACKOFF_RESET_AFTER = 600.0  # a container that ran this long starts its back-off afresh
TICK = 0.2
VOLUME_REFRESH = 10.0


def rfc3339(when: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(when if when is not None else time.time(), dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RuntimeConfig:
    node_name: str
    apiserver_port: int
    crash_backoff: float
    shim: Path
    layout: Layout
    dns_ip: str = ""
    cluster_domain: str = "cluster.local"


@dataclass
class Container:
    """The runtime record of one container of the pod."""

    spec: Obj
    init: bool = False
    proc: subprocess.Popen[bytes] | None = None
    image: ResolvedImage | None = None
    started_mono: float = 0.0
    started_wall: float = 0.0
    restart_count: int = 0
    crashes: int = 0  # consecutive, drives the back-off
    pulls_failed: int = 0
    backoff_until: float = 0.0
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    terminated: Obj | None = None
    last_terminated: Obj | None = None
    probes: dict[str, ProbeState] = field(default_factory=dict)
    started: bool = False
    ready: bool = False
    env: dict[str, str] = field(default_factory=dict)
    kill_reason: str = ""

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> Obj:
        state: Obj
        if self.running:
            state = {"running": {"startedAt": rfc3339(self.started_wall)}}
        elif self.waiting is not None:
            reason, message = self.waiting
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        elif self.terminated is not None:
            state = {"terminated": self.terminated}
        else:
            state = {"waiting": {"reason": "ContainerCreating"}}
        out: Obj = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": self.image.image_id if self.image else "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started if not self.init else self.running,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.proc is not None:
            out["containerID"] = f"process://{self.proc.pid}"
        return out


def kill_orphaned_pods(layout: Layout) -> int:
    """Stops container processes left behind by a previous kubelet (by their pid files)."""
    killed = 0
    for pidfile in (layout.kubelet / "pods").glob("*/*.pid"):
        if procs.stop_pidfile(pidfile, grace=5):
            killed += 1
    return killed


class PodWorker(threading.Thread):
    def __init__(self, kube: Kube, pod: Obj, *, config: RuntimeConfig, ipam: LoopbackIPAM,
                 images: ImageTable, on_exit: Any) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.kube = kube
        self.config = config
        self.ipam = ipam
        self.images = images
        self.uid: str = meta["uid"]
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        self.pod_dir = config.layout.kubelet / "pods" / self.uid
        self._pod = pod
        self._lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._wake = threading.Event()
        self._on_exit = on_exit
        self.volumes = VolumeBuilder(kube, self.pod_dir)
        self._volume_paths: dict[str, Path] | None = None
        self._volumes_at = 0.0
        self._volume_error = ""
        spec = pod["spec"]
        self.init_containers = [Container(c, init=True) for c in spec.get("initContainers") or []]
        self.containers = [Container(c) for c in spec.get("containers") or []]
        self.pod_ip = ""
        self.start_time = ""
        self._last_status: Obj | None = None
        self._transitions: dict[str, tuple[str, str]] = {}
        self.failed_permanently = False

    def log_dir(self, container: str) -> Path:
        """Where the container's runs keep their output (see logs.py)."""
        return self.pod_dir / "logs" / container

    def log_run(self, container: str, *, previous: bool) -> int | None:
        """The run whose log `kubectl logs [--previous]` means, None if there is none (yet)."""
        for c in self.init_containers + self.containers:
            if c.name == container:
                current = c.restart_count if (c.proc is not None or c.terminated is not None) else None
                if current is None:
                    return None
                return (current - 1 if current > 0 else None) if previous else current
        return None

    # -- inputs from the kubelet loop ----------------------------------------

    def update(self, pod: Obj) -> None:
        with self._lock:
            self._pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self._stop_requested.set()
        self._wake.set()

    def request_stop(self) -> None:
        self._stop_requested.set()
        self._wake.set()

    @property
    def pod(self) -> Obj:
        with self._lock:
            return self._pod

    # -- main loop -----------------------------------------------------------

    def run(self) -> None:
        try:
            self.pod_dir.mkdir(parents=True, exist_ok=True)
            self.pod_ip = self.ipam.claim(self.uid, self.pod.get("status", {}).get("podIP"))
            self.start_time = self.pod.get("status", {}).get("startTime") or rfc3339()
            while not self._stop_requested.is_set():
                try:
                    self._sync()
                except KubeError as err:
                    if err.status == 404:
                        break
                    log.warning("%s: API error: %s", self.key, err)
                except Exception:
                    log.exception("%s: sync failed", self.key)
                self._wake.wait(TICK)
                self._wake.clear()
            self._terminate()
        finally:
            self._on_exit(self)

    def _sync(self) -> None:
        # The downward API must see the pod's address before the first status is posted, as a
        # real kubelet sets up the network before it starts any container.
        pod = {**self.pod, "status": {**self.pod.get("status", {}), "podIP": self.pod_ip, "hostIP": "127.0.0.1"}}
        now = time.monotonic()
        if self._volume_paths is None or now - self._volumes_at > VOLUME_REFRESH:
            try:
                self._volume_paths = self.volumes.build(pod)
                self._volumes_at = now
                self._volume_error = ""
            except VolumeNotReady as err:
                self._volume_error = str(err)
                if self._volume_paths is None:
                    for c in self.init_containers + self.containers:
                        c.waiting = ("ContainerCreating", str(err))
                    self._post_status()
                    self._volumes_at = now - VOLUME_REFRESH + 1.0  # retry in a second
                    return
        if not self.failed_permanently and self._run_init_containers(pod, now):
            for container in self.containers:
                self._drive(container, pod, now)
        self._post_status()

    def _run_init_containers(self, pod: Obj, now: float) -> bool:
        """Runs init containers one at a time; True once all have succeeded."""
        for container in self.init_containers:
            if container.terminated and container.terminated.get("exitCode") == 0:
                continue
            self._drive(container, pod, now)
            return False
        return True

    # -- one container -------------------------------------------------------

    def _restart_policy(self, container: Container) -> str:
        policy = str(self.pod["spec"].get("restartPolicy", "Always"))
        if container.init and policy == "Always":
            return "OnFailure"
        return policy

    def _drive(self, container: Container, pod: Obj, now: float) -> None:
        if container.proc is not None and not container.running:
            self._record_exit(container, now)
        if container.running:
            self._probe(container, pod, now)
            return
        if container.terminated is not None and not self._should_restart(container):
            if container.init and container.terminated.get("exitCode") != 0:
                self.failed_permanently = True  # restartPolicy Never: a failed init fails the pod
            return
        if now < container.backoff_until:
            return
        self._start(container, pod, now)

    def _should_restart(self, container: Container) -> bool:
        assert container.terminated is not None
        policy = self._restart_policy(container)
        code = container.terminated.get("exitCode", 1)
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    def _backoff(self, failures: int) -> float:
        return min(self.config.crash_backoff * (2 ** max(failures - 1, 0)), MAX_BACKOFF)

    def _record_exit(self, container: Container, now: float) -> None:
        assert container.proc is not None
        code = container.proc.returncode
        exit_code = code if code >= 0 else 128 + (-code)
        ran_for = now - container.started_mono
        reason = container.kill_reason or ("Completed" if exit_code == 0 else "Error")
        container.terminated = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": rfc3339(container.started_wall),
            "finishedAt": rfc3339(),
            "containerID": f"process://{container.proc.pid}",
        }
        (self.pod_dir / f"{container.name}.pid").unlink(missing_ok=True)
        container.proc = None
        container.ready = False
        container.kill_reason = ""
        log.info("%s: container %s exited with %d after %.1fs", self.key, container.name, exit_code, ran_for)
        if not self._should_restart(container):
            container.waiting = None
            return
        container.crashes = 1 if ran_for > BACKOFF_RESET_AFTER else container.crashes + 1
        delay = self._backoff(container.crashes)
        container.backoff_until = now + delay
        container.waiting = (
            "CrashLoopBackOff",
            f"back-off {delay:.0f}s restarting failed container={container.name} pod={self.pod['metadata']['name']}",
        )

    def _start(self, container: Container, pod: Obj, now: float) -> None:
        spec = container.spec
        try:
            image = self.images.resolve(spec.get("image", ""))
        except ImagePullError as err:
            container.pulls_failed += 1
            reason = "ErrImagePull" if container.pulls_failed % 2 == 1 else "ImagePullBackOff"
            container.waiting = (reason, str(err))
            container.backoff_until = now + (
                1.0 if reason == "ErrImagePull" else self._backoff(container.pulls_failed // 2)
            )
            return
        container.image = image
        try:
            env = container_env(
                self.kube, pod, spec,
                base={**kubelet_env(pod, pod_ip=self.pod_ip, apiserver_port=self.config.apiserver_port),
                      **image.env},
            )
        except VolumeNotReady as err:
            container.waiting = ("CreateContainerConfigError", str(err))
            container.backoff_until = now + 1.0
            return
        search_path = image.path + env["PATH"].split(":")
        env["PATH"] = ":".join(dict.fromkeys(search_path))
        env["LD_PRELOAD"] = str(self.config.shim)
        command = [expand(a, env) for a in (spec.get("command") or image.entrypoint)]
        args = [expand(a, env) for a in spec.get("args") or []]
        argv = command + args
        executable = which(argv[0], search_path) if argv else None
        if not executable:
            container.waiting = (
                "RunContainerError",
                f'exec: "{argv[0] if argv else ""}": executable file not found in $PATH',
            )
            container.crashes += 1
            container.backoff_until = now + self._backoff(container.crashes)
            return
        argv[0] = executable
        mounts: list[Mount] = container_mounts(spec, self._volume_paths or {})
        resolv = self._resolv_conf(pod)
        if resolv is not None:
            mounts.append(Mount(resolv, "/etc/resolv.conf", True))
        launch_spec = {
            "argv": argv, "env": env, "workingDir": spec.get("workingDir", ""),
            "hostname": pod["metadata"]["name"],
            "mounts": [[str(m.source), m.target, m.read_only] for m in mounts],
        }
        spec_file = self.pod_dir / f"{container.name}.launch.json"
        spec_file.write_text(json.dumps(launch_spec))
        run = container.restart_count + (1 if container.terminated is not None else 0)
        writer = LogWriter(self.log_dir(container.name), run)
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(
                ["unshare", "--mount", "--uts", "--propagation", "private", "--",
                 sys.executable, "-m", "caxton_local.kubelet.launch", str(spec_file)],
                stdin=subprocess.DEVNULL, stdout=write_end, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        writer.start(read_end)
        procs.write_pidfile(self.pod_dir / f"{container.name}.pid", proc.pid)
        if container.terminated is not None:
            container.restart_count += 1
            container.last_terminated = container.terminated
        container.terminated = None
        container.waiting = None
        container.proc = proc
        container.env = env
        container.started_mono = now
        container.started_wall = time.time()
        container.started = False
        container.ready = False
        container.probes = {
            kind: ProbeState(spec[kind], started_at=now)
            for kind in ("startupProbe", "livenessProbe", "readinessProbe") if spec.get(kind)
        }
        log.info("%s: started container %s (pid %d) on %s", self.key, container.name, proc.pid, self.pod_ip)

    def _resolv_conf(self, pod: Obj) -> Path | None:
        """The pod's /etc/resolv.conf per its dnsPolicy (ClusterFirst: the cluster DNS)."""
        spec = pod["spec"]
        policy = spec.get("dnsPolicy", "ClusterFirst")
        if policy == "Default" or (policy == "ClusterFirst" and spec.get("hostNetwork")) or not self.config.dns_ip:
            return None
        ns, domain = pod["metadata"]["namespace"], self.config.cluster_domain
        nameservers, searches, options = [], [], ["ndots:5"]
        if policy != "None":
            nameservers.append(self.config.dns_ip)
            searches += [f"{ns}.svc.{domain}", f"svc.{domain}", domain]
        dns_config = spec.get("dnsConfig") or {}
        nameservers += dns_config.get("nameservers", [])
        searches += dns_config.get("searches", [])
        options += [o["name"] + (f":{o['value']}" if o.get("value") else "") for o in dns_config.get("options", [])]
        path = self.pod_dir / "resolv.conf"
        lines = [f"nameserver {n}" for n in nameservers]
        if searches:
            lines.append("search " + " ".join(searches))
        lines.append("options " + " ".join(options))
        path.write_text("\n".join(lines) + "\n")
        return path

    def _check(self, state: ProbeState, container: Container) -> bool | None:
        """Runs `state`'s probe once and returns its (threshold-decided) result."""
        ok, message = run_probe(
            state.probe, pod_ip=self.pod_ip, container=container.spec,
            pid=container.proc.pid if container.proc else None, env=container.env,
        )
        state.record(ok, message, time.monotonic())
        return state.result

    def _probe(self, container: Container, pod: Obj, now: float) -> None:
        if container.init:
            return
        startup = container.probes.get("startupProbe")
        if startup is not None and startup.result is not True:
            if startup.due(now) and self._check(startup, container) is False:
                self._kill(container, "Startup probe failed: " + startup.message)
            return
        container.started = True
        liveness = container.probes.get("livenessProbe")
        if liveness is not None and liveness.due(now) and self._check(liveness, container) is False:
            self._kill(container, "Liveness probe failed: " + liveness.message)
            return
        readiness = container.probes.get("readinessProbe")
        if readiness is None:
            container.ready = True
        elif readiness.due(now):
            container.ready = bool(self._check(readiness, container))

    def _kill(self, container: Container, why: str) -> None:
        log.info("%s: killing container %s: %s", self.key, container.name, why)
        container.kill_reason = "Error"
        self._stop_container(container, grace=float(self.pod["spec"].get("terminationGracePeriodSeconds", 30)))

    # -- termination ----------------------------------------------------------

    def _pre_stop(self, container: Container, deadline: float) -> None:
        hook = ((container.spec.get("lifecycle") or {}).get("preStop")) or {}
        if not hook or not container.running:
            return
        timeout = max(deadline - time.monotonic(), 1.0)
        try:
            if "exec" in hook:
                assert container.proc is not None
                subprocess.run(
                    ["nsenter", "-t", str(container.proc.pid), "-m", "-u", "--", *hook["exec"]["command"]],
                    env=container.env, capture_output=True, timeout=timeout,
                )
            elif "httpGet" in hook:
                url = http_get_url(hook["httpGet"], pod_ip=self.pod_ip, container=container.spec)
                httpx.get(url, timeout=timeout, verify=False)
            elif "sleep" in hook:
                time.sleep(min(float(hook["sleep"]["seconds"]), timeout))
        except (OSError, subprocess.TimeoutExpired, httpx.HTTPError, ValueError) as err:
            log.warning("%s: preStop hook of %s failed: %s", self.key, container.name, err)

    def _stop_container(self, container: Container, grace: float) -> None:
        if container.proc is None:
            return
        deadline = time.monotonic() + grace
        self._pre_stop(container, deadline)
        remaining = max(deadline - time.monotonic(), 0.0)
        pid = container.proc.pid
        for sig, wait in ((signal.SIGTERM, remaining), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            try:
                container.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        container.proc.wait()
        self._record_exit(container, time.monotonic())

    def _terminate(self) -> None:
        pod = self.pod
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        running = [c for c in self.init_containers + self.containers if c.proc is not None]
        stoppers = [
            threading.Thread(target=self._stop_container, args=(c, float(grace)), daemon=True)
            for c in running
        ]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        if pod["metadata"].get("deletionTimestamp"):
            try:
                self.kube.delete(self.path, {
                    "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                    "preconditions": {"uid": self.uid},
                })
            except KubeError as err:
                if err.status not in (404, 409):
                    log.warning("%s: final delete failed: %s", self.key, err)
            self.ipam.release(self.uid)
            shutil.rmtree(self.pod_dir / "volumes", ignore_errors=True)

    # -- status ---------------------------------------------------------------

    def _condition(self, kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        status = "True" if ok else "False"
        previous = self._transitions.get(kind)
        if previous is None or previous[0] != status:
            self._transitions[kind] = (status, rfc3339())
        cond: Obj = {"type": kind, "status": status, "lastProbeTime": None,
                     "lastTransitionTime": self._transitions[kind][1]}
        if reason and not ok:
            cond["reason"] = reason
        if message and not ok:
            cond["message"] = message
        return cond

    def _phase(self) -> str:
        if self.failed_permanently:
            return "Failed"
        if any(c.running for c in self.containers):
            return "Running"
        if self.containers and all(c.terminated is not None and not self._should_restart(c) for c in self.containers):
            codes = [c.terminated.get("exitCode", 1) for c in self.containers if c.terminated]
            return "Succeeded" if all(code == 0 for code in codes) else "Failed"
        if any(c.restart_count > 0 or c.terminated is not None for c in self.containers):
            return "Running"
        return "Pending"

    def _post_status(self) -> None:
        init_done = all(
            c.terminated is not None and c.terminated.get("exitCode") == 0 for c in self.init_containers
        )
        not_ready = [c.name for c in self.containers if not c.ready]
        containers_ready = not not_ready
        message = f"containers with unready status: [{' '.join(not_ready)}]" if not_ready else ""
        status: Obj = {
            "phase": self._phase(),
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.start_time,
            "conditions": [
                self._condition("PodReadyToStartContainers", self._volume_paths is not None),
                self._condition("Initialized", init_done, "ContainersNotInitialized",
                                "containers with incomplete status: ["
                                + " ".join(c.name for c in self.init_containers) + "]"),
                self._condition("ContainersReady", containers_ready, "ContainersNotReady", message),
                self._condition("Ready", containers_ready, "ContainersNotReady", message),
            ],
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        if status == self._last_status:
            return
        self.kube.patch(f"{self.path}/status", {"status": status}, kind="strategic")
        self._last_status = status
