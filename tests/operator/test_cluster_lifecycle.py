"""End to end: the operator turns a CaxtonCluster into running node processes that form a cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import ClusterUnderTest
from tests.support.waiting import wait_for


@pytest.fixture
def operator(crds: ClusterUnderTest, tmp_path: Path) -> Iterator[Path]:
    if not crds.has_process_kubelet:
        pytest.skip("the node image resolves only under the process kubelet (KUBECONFIG points elsewhere)")
    log = tmp_path / "operator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "caxton_operator.main"], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(crds.kubeconfig)},
        )
    try:
        yield log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def status(cluster: ClusterUnderTest, namespace: str) -> dict[str, Any]:
    obj = json.loads(cluster.kubectl("get", "cxc", "demo", "-n", namespace, "-o", "json").stdout)
    result: dict[str, Any] = obj.get("status") or {}
    return result


def test_cluster_is_provisioned_and_reports_its_members(crds: ClusterUnderTest, namespace: str,
                                                          operator: Path) -> None:
    crds.apply(yaml.safe_dump({
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonCluster", "metadata": {"name": "demo"},
        "spec": {"replicas": 3, "version": "1.2.0", "storage": {"size": "64Mi"},
                 "gossip": {"interval": "100ms", "probeInterval": "500ms", "probeTimeout": "200ms"}},
    }), namespace)
    try:
        final = wait_for(lambda: (s := status(crds, namespace)).get("phase") == "Running" and s, timeout=180,
                         what="the CaxtonCluster to be Running", interval=1)
    except AssertionError:
        print(operator.read_text()[-4000:])
        print(crds.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout)
        raise
    assert final["readyReplicas"] == 3
    assert sorted(m["name"] for m in final["members"]) == ["demo-0", "demo-1", "demo-2"]
    assert {m["state"] for m in final["members"]} == {"alive"}
    assert final["currentVersion"] == "1.2.0"
    pods = json.loads(crds.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"ghcr.io/caxton/caxton-node:1.2.0"}
    assert all(p["status"]["podIP"].startswith("127.") for p in pods)
    # The plugin, found by the pinned kubectl on PATH, asks a node through the pod proxy.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "KUBECONFIG": str(crds.kubeconfig)}

    def plugin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([crds.kubectl_path, "caxton", *args], capture_output=True, text=True, env=env,
                              timeout=60)

    members = plugin("cluster", "members", "-n", namespace, "-o", "json")
    assert members.returncode == 0, members.stderr
    assert sorted((m["id"], m["state"]) for m in json.loads(members.stdout)) == [
        ("demo-0", "alive"), ("demo-1", "alive"), ("demo-2", "alive")]
    table = plugin("cluster", "members", "-n", namespace, "--cluster", "demo").stdout.splitlines()
    assert table[0].split()[:4] == ["NODE-ID", "STATUS", "LAST-SEEN", "AGENTS"]
    assert "Status: HEALTHY (majority partition)" in plugin("cluster", "status", "-n", namespace).stdout
    assert json.loads(plugin("agents", "list", "-n", namespace, "-o", "json").stdout) == []
    missing = plugin("cluster", "members", "-n", namespace, "--cluster", "nope")
    assert missing.returncode == 2 and "nope" in missing.stderr
    crds.kubectl("delete", "cxc", "demo", "-n", namespace, "--wait=true", "--timeout=60s")
    wait_for(lambda: not crds.kubectl("get", "statefulsets,configmaps,secrets,services", "-n", namespace,
                                      "-l", "app.kubernetes.io/instance=demo", "-o", "name").stdout.strip(),
             timeout=60, what="every owned object to be garbage-collected")
