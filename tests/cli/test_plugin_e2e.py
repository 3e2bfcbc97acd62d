"""`kubectl caxton` found by kubectl's plugin discovery, against a live CaxtonCluster run
by the operator: global flags before or after the command, --node to one pod (also the
minority side of a real partition), cluster-wide answers with a NODE column and totals,
and --watch.

The tests share one operator release and one three-node cluster, in file order.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import signal
import subprocess
import sys
import tarfile
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
    # The split-brain response of the runbook: detect with a plan, compare the sides.
    detect = kubectl_caxton(release, "cluster", "detect-partition", "--resolve-strategy", "manual", "-n", ns)
    assert detect.returncode == 3, detect.stderr
    assert "Partition B: [demo-2] (minority)" in detect.stdout and "cluster compare-state" in detect.stdout
    compare = json.loads(ok(kubectl_caxton(release, "cluster", "compare-state", "-n", ns, "-o", "json")))
    assert compare["minority"]["nodes"] == ["demo-2"] and compare["minority"]["queuedWrites"] == 1
    assert compare["majority"]["nodes"] == ["demo-0", "demo-1"] and compare["majority"]["queuedWrites"] == 0
    # Every node answers through the API server, so the cluster-wide view shows the split.
    verify = kubectl_caxton(release, "cluster", "verify", "-n", ns, "-o", "json")
    assert verify.returncode == 3, verify.stderr
    views: dict[str, Any] = {n["node"]: n for n in json.loads(verify.stdout)["nodes"]}
    assert set(views) == set(NODES)
    assert views["demo-2"]["consistent"] is False
    # Resolved for the majority: the minority's queued write becomes a dead letter, not a replay.
    resolved = json.loads(ok(kubectl_caxton(release, "cluster", "resolve-partition", "--prefer", "majority", "-n", ns,
                                            "-o", "json")))
    assert resolved["losing"] == ["demo-2"] and resolved["nodes"]["demo-2"]["deadLettered"] == 1
    assert "Queued writes: 0" in ok(kubectl_caxton(release, "cluster", "status", "--node", "demo-2", "-n", ns))
    found = json.loads(ok(kubectl_caxton(release, "analyze", "messages", "--pattern", "partition_resolved", "--last",
                                         "1h", "--node", "demo-2", "-n", ns, "-o", "json")))
    assert found["matched"] == 1 and found["byError"] == {"partition_resolved": 1}, found
    partition.heal()
    wait_for(lambda: "HEALTHY" in kubectl_caxton(release, "cluster", "status", "--node", "demo-2", "-n", ns).stdout,
             timeout=60, what="demo-2 to rejoin after the heal")


def _secret_values(cluster: ClusterUnderTest, ns: str) -> dict[str, bytes]:
    values = {}
    for secret, key in (("demo-ca", "ca.key"), ("demo-gossip", "key"), ("demo-api-token", "token")):
        data = cluster.kube.get(f"/api/v1/namespaces/{ns}/secrets/{secret}")["data"][key]
        values[f"{secret}/{key}"] = base64.b64decode(data).strip()
    return values


def test_debug_dump_has_every_node_and_no_key_material(release: ClusterUnderTest, ns: str, tmp_path: Path) -> None:
    archive = tmp_path / "debug.tar.gz"
    ok(kubectl_caxton(release, "debug", "dump", "--output", str(archive), "-n", ns, timeout=180))
    with tarfile.open(archive) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    for node in NODES:  # the contents docs/debug-dump.md lists
        for name in ("config.json", "status.json", "members.json", "partition.json", "agents.json", "queue.json",
                     "memory.json", "dead-letters.json", "events.json", "metrics.txt", "log.txt"):
            assert f"nodes/{node}/{name}" in files, sorted(files)
    assert {"cluster/caxtoncluster.yaml", "cluster/caxtonagents.yaml", "cluster/pods.yaml", "cluster/events.yaml",
            "MANIFEST.txt"} <= set(files)
    assert b"caxton_cluster_nodes_alive" in files["nodes/demo-0/metrics.txt"]
    assert files["nodes/demo-0/log.txt"].strip(), "the node's log came through kubectl logs' endpoint"
    everything = b"\n".join(files.values())
    for what, secret in _secret_values(release, ns).items():
        assert len(secret) >= 16 and secret not in everything, f"{what} is in the dump"
    assert b"PRIVATE KEY" not in everything


def test_config_diff_names_each_drifted_key_per_node(release: ClusterUnderTest, ns: str, tmp_path: Path) -> None:
    baseline = tmp_path / "config.yaml"
    baseline.write_text("agents:\n  queue_capacity: 7\n")
    drift = kubectl_caxton(release, "config", "diff", "--baseline", str(baseline), "-n", ns, "-o", "json")
    assert drift.returncode == 3, drift.stderr
    nodes = json.loads(drift.stdout)["nodes"]
    assert set(nodes) == set(NODES)
    for node in NODES:
        assert {"key": "agents.queue_capacity", "baseline": 7, "running": 1024} in nodes[node]
    baseline.write_text("agents:\n  no_such_key: 1\n")
    bad = kubectl_caxton(release, "config", "diff", "--baseline", str(baseline), "-n", ns)
    assert bad.returncode == 2 and "agents.no_such_key" in bad.stderr


def _metric(release: ClusterUnderTest, ns: str, pod: str, name: str) -> float:
    text = release.kube.raw("GET", f"/api/v1/namespaces/{ns}/pods/{pod}:9090/proxy/metrics").text
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


def test_gradual_reset_ramps_the_admitted_rate_in_metrics(release: ClusterUnderTest, ns: str) -> None:
    ok(kubectl_caxton(release, "circuit-breaker", "activate", "--all", "-n", ns))
    assert all(_metric(release, ns, n, "caxton_circuit_breaker_open") == 1 for n in NODES)
    out = ok(kubectl_caxton(release, "circuit-breaker", "reset", "--gradual", "--duration", "10m", "-n", ns))
    assert out.count("reset gradually") == 3, out
    first = _metric(release, ns, "demo-0", "caxton_circuit_breaker_admitted_rate")
    assert 10 <= first < 10_000
    wait_for(lambda: _metric(release, ns, "demo-0", "caxton_circuit_breaker_admitted_rate") > first, timeout=30,
             what="the admitted rate to rise")
    assert 0 < _metric(release, ns, "demo-0", "caxton_circuit_breaker_ramp_ratio") < 1
    ok(kubectl_caxton(release, "circuit-breaker", "reset", "-n", ns))
    assert all(_metric(release, ns, n, "caxton_circuit_breaker_admitted_rate") == -1 for n in NODES)


def test_profile_and_error_cascade(release: ClusterUnderTest, ns: str) -> None:
    placement = {p["replica"]: p["node"] for p in kubectl_json(release, "get", "cxa", "counter", "-n", ns)[
        "status"]["placement"]}
    replica = sorted(placement)[0]
    profiles = json.loads(ok(kubectl_caxton(release, "profile", "--agent", replica, "--duration", "2s", "-n", ns,
                                            "-o", "json")))
    assert [(p["node"], p["agent"]) for p in profiles] == [(placement[replica], replica)]
    assert profiles[0]["samples"] >= 2
    missing = kubectl_caxton(release, "profile", "--agent", "nobody", "--duration", "1s", "-n", ns)
    assert missing.returncode == 4 and "no node runs agent nobody" in missing.stderr
    cascade = kubectl_caxton(release, "trace", "--error-cascade", "--last", "5m", "-n", ns)
    assert cascade.returncode == 0 and "No error cascade in the last 5m" in cascade.stdout, cascade


def annotated_targets(cluster: ClusterUnderTest, ns: str) -> list[dict[str, Any]]:
    """What docs/prometheus.md's pod discovery and relabelling make of the namespace's pods:
    Debian's prometheus is built without kubernetes_sd, so the test applies the same rules to
    the pods it reads and hands Prometheus the result as a file_sd target list."""
    targets = []
    for pod in kubectl_json(cluster, "get", "pods", "-n", ns)["items"]:
        notes = pod["metadata"].get("annotations") or {}
        if notes.get("prometheus.io/scrape") != "true" or not pod["status"].get("podIP"):
            continue
        targets.append({"targets": [f"{pod['status']['podIP']}:{notes['prometheus.io/port']}"],
                        "labels": {"instance": pod["metadata"]["name"], "namespace": ns,
                                   "__metrics_path__": notes.get("prometheus.io/path", "/metrics")}})
    return targets


def _prometheus_config(targets: Path, rules: Path) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "2s", "scrape_timeout": "1s", "evaluation_interval": "2s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "caxton-nodes", "file_sd_configs": [{"files": [str(targets)]}]}],
    }


def test_prometheus_scrapes_every_node_and_fires_node_down(release: ClusterUnderTest, ns: str,
                                                           tmp_path: Path) -> None:
    """Debian's prometheus scrapes the nodes its pod annotations name, answers
    caxton_cluster_nodes_alive over its HTTP API, and fires CaxtonNodeDown for a frozen node.
    The rules are the chart's, with each `for:` hold cut to 4 s so the test does not sit out a
    minute (promtool's unit tests cover the holds)."""
    if not release.has_process_kubelet:
        pytest.skip("needs the process kubelet of the local control plane (pod addresses on this machine)")
    import httpx
    from caxton_local.layout import free_port

    rules = yaml.safe_load((ROOT / "helm" / "caxton-operator" / "files" / "caxton-alerts.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "4s"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    targets = annotated_targets(release, ns)
    assert [t["labels"]["instance"] for t in targets] == NODES, "every node pod is annotated for scraping"
    (tmp_path / "targets.json").write_text(json.dumps(targets))
    (tmp_path / "prometheus.yaml").write_text(yaml.safe_dump(_prometheus_config(tmp_path / "targets.json",
                                                                                tmp_path / "rules.yaml")))
    port = free_port()
    server = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yaml'}",
                               f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"))  # noqa: SIM115
    api = f"http://127.0.0.1:{port}/api/v1"
    frozen = 0
    try:
        def alive() -> dict[str, float] | None:
            try:
                found = httpx.get(f"{api}/query", params={"query": "caxton_cluster_nodes_alive"}, timeout=5).json()
            except httpx.HTTPError:
                return None
            values = {r["metric"]["instance"]: float(r["value"][1]) for r in found["data"]["result"]}
            return values if values == dict.fromkeys(NODES, 3.0) else None

        wait_for(alive, timeout=120, what="Prometheus to scrape three nodes that each see three alive")
        pod = kubectl_json(release, "get", "pod", "demo-2", "-n", ns)
        frozen = int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("process://"))
        os.killpg(frozen, signal.SIGSTOP)

        def firing() -> list[dict[str, Any]] | None:
            alerts = httpx.get(f"{api}/alerts", timeout=5).json()["data"]["alerts"]
            down = [a for a in alerts if a["labels"]["alertname"] == "CaxtonNodeDown" and a["state"] == "firing"]
            return down or None

        down = wait_for(firing, timeout=120, what="CaxtonNodeDown to fire in Prometheus")
        assert any(a["labels"].get("instance") == "demo-2" for a in down), down
    finally:
        if frozen:
            os.killpg(frozen, signal.SIGCONT)
        server.terminate()
        server.wait(timeout=30)
    wait_for(lambda: members(ok(kubectl_caxton(release, "cluster", "members", "-n", ns, "-o", "json"))) == [
        (n, "alive") for n in NODES], timeout=120, what="demo-2 alive again")


# --- the runbook walk --------------------------------------------------------------------------

def _runbook() -> Path:
    """The operations runbook: $CAXTON_RUNBOOK, else the shared one beside the checkout
    (../shared/ of any parent), else the copy in docs/."""
    if os.environ.get("CAXTON_RUNBOOK"):
        return Path(os.environ["CAXTON_RUNBOOK"])
    shared = [p / "shared" / "OPERATIONS-RUNBOOK.md" for p in ROOT.parents]
    return next((p for p in shared if p.is_file()), ROOT / "docs" / "OPERATIONS-RUNBOOK.md")


RUNBOOK = _runbook()
# Verbs other engineers are adding; the lead empties this list as their branches merge. A verb on
# it that starts parsing fails the walk, so the list cannot outlive the work it waits for.
PENDING = {
    "cluster isolate", "cluster rebuild", "cluster rejoin",  # issue #14: not built yet
}
# Run on the machine a node runs on, not through the plugin: checked against `caxton`'s parser.
DIRECT_ONLY = {"server start"}
USAGE_ERRORS = ("usage:", "invalid choice", "unrecognized arguments", "the following arguments are required",
                "expected one argument")


def runbook_commands(text: str) -> list[str]:
    """Every `caxton ...` command in the runbook's code blocks, continuation lines joined
    (also inside `ssh host '...'` and `watch '...'`)."""
    commands, in_block, pending = [], False, ""
    for raw in text.splitlines():
        if raw.strip().startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        start = line.find("caxton ")
        if start < 0 or line.startswith("#") or (start > 0 and line[start - 1] not in " '\""):
            continue
        commands.append(line[start:].split("'")[0].strip())
    return commands


def _verb(command: str) -> str:
    words = command.split()[1:]
    for key in sorted(PENDING | DIRECT_ONLY, key=len, reverse=True):
        if " ".join(words).startswith(key):
            return key
    return " ".join(w for w in words[:2] if not w.startswith("-"))


def test_the_runbook_commands_as_written(release: ClusterUnderTest, ns: str, tmp_path: Path) -> None:
    """Last in the module (it stops agents and trips the breaker): every runbook command typed as
    written, with -n and --cluster added, through kubectl's plugin discovery; none may be a
    usage error. Commands still running after 30 s were understood (an upgrade waits)."""
    from caxton_cli.parser import build

    commands = runbook_commands(RUNBOOK.read_text())
    assert len(commands) > 40, commands
    env = plugin_env(release)
    problems, pending_seen = [], set()
    for command in commands:
        verb = _verb(command)
        if verb in DIRECT_ONLY:
            build("caxton").parse_args(shlex.split(command)[1:])  # SystemExit is a usage error
            continue
        # Files the runbook writes under /etc/caxton go to this test's directory instead.
        line = f"{release.kubectl_path} {command.replace('/etc/caxton/', f'{tmp_path}/etc/caxton/')} -n {ns} " \
               "--cluster demo"
        try:  # through a shell, as typed: $(date +%s) and friends expand
            result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, timeout=30,
                                    cwd=tmp_path)
        except subprocess.TimeoutExpired:
            continue
        usage = result.returncode == 2 and any(u in result.stderr for u in USAGE_ERRORS)
        if verb in PENDING:
            pending_seen.add(verb)
            if not usage:
                problems.append(f"{command}: works now (exit {result.returncode}); remove {verb!r} from PENDING")
        elif usage:
            problems.append(f"{command}: {result.stderr.strip().splitlines()[-1]}")
    assert not problems, "\n".join(problems)
    assert pending_seen == PENDING, f"not in the runbook any more: {PENDING - pending_seen}"
