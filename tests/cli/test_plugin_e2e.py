"""`kubectl caxton` found by kubectl's plugin discovery, against a live CaxtonCluster run
by the operator: global flags before or after the command, --node to one pod (also the
minority side of a real partition), cluster-wide answers with a NODE column and totals,
and --watch.

The tests share one operator release and one three-node cluster, in file order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.test_operator_e2e import CHART, OPERATOR_NS, RELEASE, alive, helm, kubectl_json, wait_cluster
from tests.support.agents import build_example_agents
from tests.support.cluster import ClusterUnderTest, temporary_namespace
from tests.support.netfault import NetworkPartition
from tests.support.waiting import wait_for

NODES = ["demo-0", "demo-1", "demo-2"]
ROOT = Path(__file__).resolve().parents[2]


def plugin_env(cluster: ClusterUnderTest, *, kubeconfig_env: bool = True) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("KUBECONFIG", None)
    if kubeconfig_env:
        env["KUBECONFIG"] = str(cluster.kubeconfig)
    return env


def kubectl_caxton(cluster: ClusterUnderTest, *args: str, kubeconfig_env: bool = True,
                   timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`kubectl caxton ...` as a user types it: the pinned kubectl finds kubectl-caxton on PATH."""
    return subprocess.run([cluster.kubectl_path, "caxton", *args], capture_output=True, text=True,
                          env=plugin_env(cluster, kubeconfig_env=kubeconfig_env), timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


def operator_namespace_gone(cluster: ClusterUnderTest) -> None:
    """The operator e2e installs the same release in the same session: neither may start
    while the other's namespace is still terminating."""
    wait_for(lambda: cluster.kube.get_or_none(f"/api/v1/namespaces/{OPERATOR_NS}") is None, timeout=180,
             what=f"namespace {OPERATOR_NS} to be gone")


@pytest.fixture(scope="module")
def release(crds: ClusterUnderTest) -> Iterator[ClusterUnderTest]:
    if not crds.has_process_kubelet and not os.environ.get("CAXTON_TEST_IMAGES"):
        pytest.skip("the caxton images must be loadable by this cluster's nodes (see tests/operator)")
    operator_namespace_gone(crds)
    helm(crds, "install", RELEASE, str(CHART), "-n", OPERATOR_NS, "--create-namespace", "--wait", "--timeout", "180s")
    try:
        yield crds
    finally:
        helm(crds, "uninstall", RELEASE, "-n", OPERATOR_NS, "--wait", "--timeout", "120s")
        crds.kube.delete(f"/api/v1/namespaces/{OPERATOR_NS}")
        operator_namespace_gone(crds)


@pytest.fixture(scope="module")
def ns(release: ClusterUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for name in temporary_namespace(release):
        release.apply(yaml.safe_dump({
            "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonCluster", "metadata": {"name": "demo"},
            "spec": {"replicas": 3, "version": "1.2.0", "storage": {"size": "64Mi"},
                     "gossip": {"interval": "100ms", "probeInterval": "500ms", "probeTimeout": "200ms"},
                     "rebalance": {"replaceAfter": "600s"}},
        }), name)
        wait_cluster(release, name, lambda s: s.get("phase") == "Running" and alive(s) == NODES,
                     "the CaxtonCluster to be Running with three alive members")
        module = tmp_path_factory.mktemp("agents") / "counter.wasm"
        module.write_bytes(build_example_agents()["counter"])
        ok(kubectl_caxton(release, "agents", "deploy", str(module), "--id", "counter", "--replicas", "2",
                          "-n", name, timeout=180))
        try:
            yield name
        finally:  # while the operator still runs: its finalizer must let the CaxtonCluster go
            release.kubectl("delete", "cxa,cxc", "--all", "-n", name, "--wait=true", "--timeout=120s", check=False,
                            timeout=180)


def members(stdout: str) -> list[tuple[str, str]]:
    return sorted((m["id"], m["state"]) for m in json.loads(stdout))


def test_global_flags_are_accepted_before_and_after_the_command(release: ClusterUnderTest, ns: str) -> None:
    before = ok(kubectl_caxton(release, "-n", ns, "--cluster", "demo", "-o", "json", "cluster", "members"))
    after = ok(kubectl_caxton(release, "cluster", "members", "-n", ns, "--cluster", "demo", "-o", "json"))
    between = ok(kubectl_caxton(release, "cluster", "-n", ns, "members", "-o", "json"))
    assert members(before) == members(after) == members(between) == [(n, "alive") for n in NODES]
    # --kubeconfig and --context instead of $KUBECONFIG, before the command.
    context = release.kubectl("config", "current-context").stdout.strip()
    explicit = kubectl_caxton(release, "--kubeconfig", str(release.kubeconfig), "--context", context, "-n", ns,
                              "cluster", "status", "-o", "yaml", kubeconfig_env=False)
    assert yaml.safe_load(ok(explicit))["status"] == "HEALTHY"
    wrong = kubectl_caxton(release, "cluster", "status", "-n", ns, "--context", "no-such-context")
    assert wrong.returncode == 2 and "no-such-context" in wrong.stderr
    assert kubectl_caxton(release, "cluster", "status", "-n", ns, "--cluster", "nope").returncode == 4
    empty = kubectl_caxton(release, "cluster", "members", "-n", "default")
    assert empty.returncode == 4 and "no CaxtonCluster in namespace default" in empty.stderr


def test_node_flag_asks_that_pod(release: ClusterUnderTest, ns: str) -> None:
    for node in NODES:
        status = json.loads(ok(kubectl_caxton(release, "cluster", "status", "--node", node, "-n", ns, "-o", "json")))
        assert status["node"] == node
    memory = json.loads(ok(kubectl_caxton(release, "--node", "demo-1", "memory", "stats", "-n", ns, "-o", "json")))
    assert [n["node"] for n in memory["nodes"]] == ["demo-1"]
    missing = kubectl_caxton(release, "cluster", "status", "--node", "demo-9", "-n", ns)
    assert missing.returncode == 4 and "no node demo-9" in missing.stderr and "demo-0, demo-1, demo-2" in missing.stderr


def table(stdout: str) -> tuple[list[str], list[list[str]]]:
    lines = [line.split() for line in stdout.strip().split("\n\n")[0].splitlines()]
    return lines[0], lines[1:]


def test_memory_stats_answers_for_every_node_with_totals(release: ClusterUnderTest, ns: str) -> None:
    header, rows = table(ok(kubectl_caxton(release, "memory", "stats", "-n", ns)))
    assert header == ["NODE", "USED", "LIMIT", "AGENTS", "RSS"]
    assert [r[0] for r in rows] == [*NODES, "TOTAL"]
    data = json.loads(ok(kubectl_caxton(release, "memory", "stats", "-n", ns, "-o", "json")))
    assert [n["node"] for n in data["nodes"]] == NODES
    assert data["total"]["agents"] == sum(n["agents"] for n in data["nodes"]) == 2  # the two counter replicas
    assert data["total"]["agentMemoryBytes"] == sum(n["agentMemoryBytes"] for n in data["nodes"]) > 0
    assert int(rows[-1][3]) == 2


def test_agents_list_and_slow_cover_every_node(release: ClusterUnderTest, ns: str) -> None:
    header, rows = table(ok(kubectl_caxton(release, "agents", "list", "-n", ns)))
    assert header[:3] == ["NODE", "AGENT-ID", "STATE"]
    listed = json.loads(ok(kubectl_caxton(release, "agent", "list", "-n", ns, "-o", "json")))
    placement = {p["replica"]: p["node"] for p in kubectl_json(release, "get", "cxa", "counter", "-n", ns)[
        "status"]["placement"]}
    assert {a["id"]: a["node"] for a in listed} == placement == {r[1]: r[0] for r in rows}
    assert len(set(placement.values())) == 2, "the replicas are on two nodes, and both are listed"
    slow = json.loads(ok(kubectl_caxton(release, "agents", "slow", "--threshold", "0ms", "-n", ns, "-o", "json")))
    assert all(a["node"] in NODES for a in slow)
    none = kubectl_caxton(release, "agents", "slow", "--threshold", "1h", "-n", ns)
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "No agent slower than 1h on 3 node(s).\n")


def test_queue_stats_and_verify_answer_for_every_node(release: ClusterUnderTest, ns: str) -> None:
    header, rows = table(ok(kubectl_caxton(release, "queue", "stats", "-n", ns)))
    assert header == ["NODE", "DEPTH", "DEAD-LETTERS", "CIRCUIT-BREAKER"]
    assert [r[0] for r in rows] == [*NODES, "TOTAL"]
    data = json.loads(ok(kubectl_caxton(release, "queue", "stats", "-n", ns, "-o", "json")))
    assert data["total"]["depth"] == sum(n["depth"] for n in data["nodes"])
    def agreed() -> str | None:
        result = kubectl_caxton(release, "cluster", "verify", "-n", ns)
        return result.stdout if result.returncode == 0 else None

    verified: str = wait_for(agreed, timeout=30, what="every node to agree")
    header, rows = table(verified)
    assert header == ["NODE", "MEMBERS", "AGENTS", "VERIFY"]
    assert rows == [[n, "3", "2", "OK"] for n in NODES]
    assert "OK: 3 node(s) agree" in verified


def test_watch_prints_each_change_until_the_timeout(release: ClusterUnderTest, ns: str, tmp_path: Path) -> None:
    env = plugin_env(release)
    watcher = subprocess.Popen([release.kubectl_path, "caxton", "cluster", "members", "--watch", "-n", ns,
                                "--interval", "0.5", "--timeout", "40", "-o", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        module = tmp_path / "echo.wasm"
        module.write_bytes(build_example_agents()["echo"])
        time.sleep(2)  # let the watch print the first answer before anything changes
        ok(kubectl_caxton(release, "agents", "deploy", str(module), "--id", "watched", "-n", ns, timeout=120))
        out, err = watcher.communicate(timeout=90)
    finally:
        watcher.kill()
        watcher.wait()
        kubectl_caxton(release, "agents", "remove", "watched", "-n", ns, timeout=120)
    assert watcher.returncode == 0, err  # it ended by itself at --timeout, not killed
    answers = [json.loads(chunk) for chunk in _json_documents(out)]
    assert len(answers) >= 2, out
    agents = [sum(m.get("agents", 0) for m in answer) for answer in answers]
    assert agents[0] == 2 and agents[-1] == 3  # the deployed agent shows up in a later answer


def test_start_up_benchmark_against_this_cluster(release: ClusterUnderTest, ns: str, tmp_path: Path) -> None:
    """bench/cli.py with a live cluster: `cluster members` through kubectl as well (figures
    printed, no timing asserted)."""
    out = tmp_path / "cli.json"
    result = subprocess.run([sys.executable, "-m", "bench.cli", "--runs", "5", "--kubectl", release.kubectl_path,
                             "--kubeconfig", str(release.kubeconfig), "-n", ns, "--cluster", "demo",
                             "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    figures = json.loads(out.read_text())["figures"]
    assert {"members_p50_ms", "members_via_kubectl_p50_ms", "help_p50_ms"} <= set(figures)


def _json_documents(text: str) -> Iterator[str]:
    decoder = json.JSONDecoder()
    index = 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return
        _, end = decoder.raw_decode(text, index)
        yield text[index:end]
        index = end


def test_a_node_that_does_not_answer_is_named_and_the_rest_still_shown(release: ClusterUnderTest, ns: str,
                                                                      partition: NetworkPartition) -> None:
    if not release.has_process_kubelet:
        pytest.skip("iptables on this machine reaches only pods of the process kubelet")
    ip = kubectl_json(release, "get", "pod", "demo-1", "-n", ns)["status"]["podIP"]
    partition.refuse(ip, 8080)
    try:
        result = kubectl_caxton(release, "memory", "stats", "-n", ns)
    finally:
        partition.heal()
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: demo-1: cannot reach"), result.stderr
    _, rows = table(result.stdout)
    assert [r[0] for r in rows] == [*NODES, "TOTAL"]
    assert rows[1] == ["demo-1", "-", "-", "-", "unreachable"]


def test_node_flag_reaches_the_minority_side_of_a_partition(release: ClusterUnderTest, ns: str,
                                                           partition: NetworkPartition) -> None:
    if not release.has_process_kubelet:
        pytest.skip("iptables on this machine reaches only pods of the process kubelet")
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in kubectl_json(release, "get", "pods", "-n", ns)["items"]}
    partition.cut([ips["demo-2"]], [ips["demo-0"], ips["demo-1"]])

    def minority() -> str | None:
        result = kubectl_caxton(release, "cluster", "status", "--node", "demo-2", "-n", ns)
        return result.stdout if result.returncode == 0 and "READ-ONLY" in result.stdout else None

    wait_for(minority, timeout=90, what="demo-2 to turn read-only on the minority side")
    # A write on the minority side for an agent across the cut is queued, and the plugin says so.
    placement = {p["replica"]: p["node"] for p in kubectl_json(release, "get", "cxa", "counter", "-n", ns)[
        "status"]["placement"]}
    across = next(replica for replica, node in sorted(placement.items()) if node != "demo-2")
    ok(kubectl_caxton(release, "send", "--node", "demo-2", "--to", across, "--content", '"held"', "-n", ns))
    text = ok(kubectl_caxton(release, "cluster", "status", "--node", "demo-2", "-n", ns))
    assert "Status: DEGRADED (minority partition)" in text
    assert "Operations: READ-ONLY" in text
    assert "Queued writes: 1" in text, text
    majority = ok(kubectl_caxton(release, "cluster", "status", "--node", "demo-0", "-n", ns))
    assert "Status: HEALTHY (majority partition)" in majority
    # Every node answers through the API server, so the cluster-wide view shows the split.
    verify = kubectl_caxton(release, "cluster", "verify", "-n", ns, "-o", "json")
    assert verify.returncode == 3, verify.stderr
    views: dict[str, Any] = {n["node"]: n for n in json.loads(verify.stdout)["nodes"]}
    assert set(views) == set(NODES)
    assert views["demo-2"]["consistent"] is False
    partition.heal()
    wait_for(lambda: "HEALTHY" in kubectl_caxton(release, "cluster", "status", "--node", "demo-2", "-n", ns).stdout,
             timeout=60, what="demo-2 to rejoin after the heal")
