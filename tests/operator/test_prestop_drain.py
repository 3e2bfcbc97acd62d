"""The node pods' preStop hook (`caxton queue drain`) finishes a backlog before SIGTERM.

The pod runs the container the operator ships in its StatefulSet (command, environment,
probes and preStop hook taken from `workload.statefulset`), as a single node with its data
on a hostPath, so the node's journal can be read after the pod is gone. The backlog is held
by a suspended agent; the test resumes it only once the kubelet runs the hook, which proves
that the node still answers (no SIGTERM yet) while the drain waits.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import yaml
from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.resources import workload
from caxton_operator.resources.naming import Names
from caxton_operator.resources.nodeconfig import DATA_DIR, TOKEN_FILE

from tests.support.agents import build_example_agents
from tests.support.cluster import ClusterUnderTest, pod_ready
from tests.support.waiting import wait_for

BACKLOG = 40


def _node_pod(names: Names, data_dir: Path) -> dict[str, Any]:
    """The shipped node container, alone in a pod, with its data on `data_dir`."""
    shipped = workload.statefulset(CaxtonClusterSpec.model_validate(
        {"version": "1.2.0", "tls": {"enabled": False}}), names)["spec"]["template"]["spec"]
    container = dict(shipped["containers"][0])
    assert container["lifecycle"]["preStop"]["exec"]["command"][:3] == ["caxton", "queue", "drain"]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] in ("config", "api-token", "data")]
    volumes = [v for v in shipped["volumes"] if v["name"] in ("config", "api-token")]
    volumes.append({"name": "data", "hostPath": {"path": str(data_dir), "type": "DirectoryOrCreate"}})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": names.pod(0), "labels": dict(names.labels)},
            "spec": {"terminationGracePeriodSeconds": shipped["terminationGracePeriodSeconds"],
                     "containers": [container], "volumes": volumes}}


def _drain_hooks(pod_ip: str) -> list[int]:
    """Processes running `caxton queue drain` for the pod at `pod_ip` (the kubelet's preStop)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"queue" in argv and b"drain" in argv and f"CAXTON_POD_IP={pod_ip}".encode() in environ:
            found.append(int(proc.name))
    return found


def test_prestop_drain_finishes_the_backlog_before_sigterm(process_cluster: ClusterUnderTest, namespace: str,
                                                          tmp_path: Path) -> None:
    c = process_cluster
    names = Names("drain", namespace)
    token = secrets.token_urlsafe(24)
    data_dir = tmp_path / "data"
    c.apply(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": names.config},
         "data": {"config.yaml": yaml.safe_dump({
             "node": {"id": "drain-0", "data_dir": DATA_DIR, "api_addr": "0.0.0.0:8080",
                      "metrics_addr": "0.0.0.0:9090"},
             "security": {"api": {"token_file": TOKEN_FILE}}})}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": names.token},
         "data": {"token": base64.b64encode(token.encode()).decode()}},
        _node_pod(names, data_dir),
    ]), namespace)
    path = f"/api/v1/namespaces/{namespace}/pods/{names.pod(0)}"
    pod: dict[str, Any] = wait_for(lambda: p if pod_ready(p := c.kube.get(path)) else None, timeout=120,
                                   what="the node pod Ready")
    ip = pod["status"]["podIP"]
    headers = {"X-Caxton-Token": token}

    def call(method: str, api: str, **kwargs: Any) -> Any:
        resp = c.kube.raw(method, f"{path}:8080/proxy{api}", headers=headers, **kwargs)
        assert resp.status_code < 300, f"{method} {api}: {resp.status_code} {resp.text}"
        return resp.json()

    call("POST", "/v1/agents", json={"id": "echo", "wasm": base64.b64encode(build_example_agents()["echo"]).decode()})
    call("GET", "/v1/mailboxes/drain-client")
    call("POST", "/v1/agents/echo/suspend")
    conversation = f"drain-{uuid.uuid4().hex[:6]}"
    for i in range(BACKLOG):
        call("POST", "/v1/messages", json={"performative": "request", "sender": "drain-client", "receiver": "echo",
                                           "conversation_id": conversation, "content": {"n": i}})
    assert call("GET", "/v1/queue")["depth"] == BACKLOG

    c.kubectl("delete", "pod", names.pod(0), "-n", namespace, "--wait=false")
    hooks = wait_for(lambda: _drain_hooks(ip), timeout=60, what="the kubelet to run the preStop drain")
    # The hook is waiting for the backlog; the node has had no SIGTERM and still serves.
    assert call("GET", "/v1/queue")["depth"] == BACKLOG
    call("POST", "/v1/agents/echo/resume")
    wait_for(lambda: c.kube.get_or_none(path) is None, timeout=90, what="the pod to be gone")
    assert not any(Path(f"/proc/{pid}").exists() for pid in hooks)

    # The node's journal after it stopped: every message handled, nothing left or dead-lettered.
    db = sqlite3.connect(data_dir / "caxton.db")
    try:
        assert db.execute("SELECT COUNT(*) FROM queue").fetchone()[0] == 0
        assert db.execute("SELECT reason FROM dead_letters").fetchall() == []
        bodies = [json.loads(row[0]) for row in db.execute(
            "SELECT body FROM conversations WHERE conversation_id = ?", (conversation,))]
    finally:
        db.close()
    replies = [b for b in bodies if b["sender"] == "echo" and b["receiver"] == "drain-client"]
    assert sorted(r["content"]["content"]["n"] for r in replies) == list(range(BACKLOG))

