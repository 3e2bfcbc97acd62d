"""The process kubelet's probes and termination, as the README promises them: exec and
tcpSocket readiness, a failing liveness probe restarts the container, and deletion runs
preStop, then SIGTERM, the grace period, then SIGKILL.

Every pod is created by one module fixture, so they start (and their probes run) at the same
time; each test then waits for its own pod. The pods share a hostPath directory with the test,
where their scripts write what happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import ClusterUnderTest, pod_ready, temporary_namespace
from tests.support.waiting import wait_for

# A process that logs SIGTERM and keeps running (so only SIGKILL stops it), ticking meanwhile.
STUBBORN = """
import os, signal, sys, time
out = sys.argv[1]
def log(line):
    with open(out + "/log", "a") as f:
        f.write(line + "\\n")
signal.signal(signal.SIGTERM, lambda *_: log("TERM"))
log("started %d" % os.getpid())
while True:
    time.sleep(0.2)
    log("tick")
"""

# Listens on :9000 (the pod's address) until /out/close appears, counting the connections.
LISTENER = """
import os, socket, sys, time
out = sys.argv[1]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 9000))
server.listen(16)
server.settimeout(0.2)
accepted = 0
while not os.path.exists(out + "/close"):
    try:
        conn, _ = server.accept()
    except socket.timeout:
        continue
    conn.close()
    accepted += 1
    open(out + "/accepted", "w").write(str(accepted))
server.close()
while True:
    time.sleep(1)
"""

# Records each start, declares itself healthy, then idles.
LIVE = """
import os, sys, time
out = sys.argv[1]
with open(out + "/starts", "a") as f:
    f.write("%d\\n" % os.getpid())
open(out + "/healthy", "w").close()
while True:
    time.sleep(1)
"""


@dataclass
class Pods:
    cluster: ClusterUnderTest
    namespace: str
    dirs: dict[str, Path]

    def get(self, name: str) -> dict[str, Any]:
        pod: dict[str, Any] = self.cluster.kube.get(f"/api/v1/namespaces/{self.namespace}/pods/{name}")
        return pod


def _pod(name: str, script: str, out: Path, **container: Any) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": container.pop("grace", 5),
            "containers": [{
                "name": "main", "image": "python:3.11", "command": ["python3", "-c", script, "/out"],
                "volumeMounts": [{"name": "out", "mountPath": "/out"}], **container,
            }],
            "volumes": [{"name": "out", "hostPath": {"path": str(out), "type": "DirectoryOrCreate"}}],
        },
    })


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(scope="module")
def pods(cluster: ClusterUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pods]:
    if not cluster.has_process_kubelet:
        pytest.skip("needs the process kubelet of the local control plane (KUBECONFIG points elsewhere)")
    root = tmp_path_factory.mktemp("lifecycle")
    dirs = {name: root / name for name in ("stubborn", "exec-ready", "tcp-ready", "liveness")}
    for path in dirs.values():
        path.mkdir()
    for namespace in temporary_namespace(cluster):
        cluster.apply("---\n".join([
            _pod("stubborn", STUBBORN, dirs["stubborn"], grace=3, lifecycle={"preStop": {"exec": {"command": [
                "sh", "-c", "echo prestop-start >> /out/log; sleep 1; echo prestop-end >> /out/log"]}}}),
            _pod("exec-ready", STUBBORN, dirs["exec-ready"], readinessProbe={
                "exec": {"command": ["sh", "-c", "echo probe >> /out/probes; test -f /out/ready"]},
                "periodSeconds": 1, "failureThreshold": 1}),
            _pod("tcp-ready", LISTENER, dirs["tcp-ready"], readinessProbe={
                "tcpSocket": {"port": 9000}, "periodSeconds": 1, "failureThreshold": 1}),
            _pod("liveness", LIVE, dirs["liveness"], livenessProbe={
                "exec": {"command": ["test", "-f", "/out/healthy"]}, "periodSeconds": 1, "failureThreshold": 2}),
        ]), namespace)
        yield Pods(cluster, namespace, dirs)


def _running(pods: Pods, name: str) -> dict[str, Any]:
    return wait_for(lambda: (p := pods.get(name))["status"].get("phase") == "Running" and p, timeout=90,
                    what=f"{name} running")


def test_exec_readiness_probe_runs_inside_the_container(pods: Pods) -> None:
    out = pods.dirs["exec-ready"]
    _running(pods, "exec-ready")
    # The probe ran (and failed) several times: the file it looks for is only visible inside the
    # container's mount namespace, at /out, and does not exist yet.
    wait_for(lambda: len(_lines(out / "probes")) >= 3, timeout=60, what="three readiness probes")
    assert not pod_ready(pods.get("exec-ready"))
    (out / "ready").touch()
    wait_for(lambda: pod_ready(pods.get("exec-ready")), timeout=30, what="exec-ready to become Ready")


def test_tcp_socket_readiness_follows_the_listener(pods: Pods) -> None:
    out = pods.dirs["tcp-ready"]
    _running(pods, "tcp-ready")
    wait_for(lambda: pod_ready(pods.get("tcp-ready")), timeout=60, what="tcp-ready Ready while it listens")
    assert int((out / "accepted").read_text()) >= 1, "the probe connected to the pod's port"
    (out / "close").touch()
    wait_for(lambda: not pod_ready(pods.get("tcp-ready")), timeout=30,
             what="tcp-ready to become unready once nothing listens")
    assert pods.get("tcp-ready")["status"]["containerStatuses"][0]["restartCount"] == 0


def test_failing_liveness_probe_restarts_the_container(pods: Pods) -> None:
    out = pods.dirs["liveness"]
    _running(pods, "liveness")
    wait_for(lambda: len(_lines(out / "starts")) == 1 and (out / "healthy").exists(), timeout=30,
             what="the first start")
    first_pid = int(_lines(out / "starts")[0])
    (out / "healthy").unlink()
    def restarted() -> dict[str, Any] | None:
        status: dict[str, Any] = pods.get("liveness")["status"]["containerStatuses"][0]
        # Running again, and the new process has recorded its start.
        ok = status["restartCount"] >= 1 and status.get("state", {}).get("running") and len(_lines(out / "starts")) >= 2
        return status if ok else None

    status = wait_for(restarted, timeout=60, what="a restart after liveness failed")
    starts = _lines(out / "starts")
    assert len(starts) >= 2 and int(starts[-1]) != first_pid
    assert not Path(f"/proc/{first_pid}").exists()
    # (A slow start can fail the probe again before the new process declares itself healthy.)
    assert status["lastState"]["terminated"]["containerID"] in {f"process://{pid}" for pid in starts[:-1]}
    assert status["containerID"] in {f"process://{pid}" for pid in starts[1:]}


def test_deletion_runs_prestop_then_sigterm_then_sigkill_after_the_grace_period(pods: Pods) -> None:
    out = pods.dirs["stubborn"]
    _running(pods, "stubborn")
    started = wait_for(lambda: next((line for line in _lines(out / "log") if line.startswith("started")), None),
                       timeout=30, what="stubborn to start")
    pid = int(started.split()[1])
    pods.cluster.kubectl("delete", "pod", "stubborn", "-n", pods.namespace, "--wait=true", "--timeout=60s")
    # The pod object goes only once its process has: the process ignored SIGTERM, so SIGKILL ended it.
    assert not Path(f"/proc/{pid}").exists()
    events = [line for line in _lines(out / "log") if line != "tick"]
    assert events[:4] == [started, "prestop-start", "prestop-end", "TERM"], events
    log = _lines(out / "log")
    # Still alive (ticking) after SIGTERM, during the grace period; never TERMed twice.
    assert "tick" in log[log.index("TERM"):], "the process ran on after SIGTERM until the grace period ended"
    assert log.count("TERM") == 1
    # The hook ran while the container did: the main process ticked on between its start and end.
    assert "tick" in log[log.index("prestop-start"):log.index("prestop-end")]

