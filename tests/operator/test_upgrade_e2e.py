"""End to end: CaxtonUpgrade on real pods of the local control plane.

One operator install (helm) and one namespace for the module; each case makes its own
CaxtonCluster, and independent cases run side by side. Faulty releases are image-table
entries (tests/faults/). Load is counted by tests/support/load.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.agents import build_example_agents
from tests.support.cluster import ClusterUnderTest, pod_ready, temporary_namespace
from tests.support.faults import add_faulty_release
from tests.support.load import LoadReport, MessageLoad
from tests.support.operator_release import OPERATOR_NS, kill_pod_process, operator_leader, operator_release
from tests.support.waiting import wait_for

GOSSIP = {"interval": "100ms", "probeInterval": "500ms", "probeTimeout": "200ms"}


@pytest.fixture(scope="module")
def release(crds: ClusterUnderTest) -> Iterator[ClusterUnderTest]:
    if not crds.has_process_kubelet:
        pytest.skip("upgrade tests use the process kubelet's image table for their faulty releases")
    yield from operator_release(crds)


@pytest.fixture(scope="module")
def ns(release: ClusterUnderTest) -> Iterator[str]:
    yield from temporary_namespace(release)


# -- helpers -----------------------------------------------------------------------------------------------------

def get(cluster: ClusterUnderTest, path: str) -> Any:
    return cluster.kube.get(path)


def cxc_path(ns: str, name: str = "") -> str:
    return f"/apis/caxton.dev/v1alpha1/namespaces/{ns}/caxtonclusters" + (f"/{name}" if name else "")


def cxu_path(ns: str, name: str = "") -> str:
    return f"/apis/caxton.dev/v1alpha1/namespaces/{ns}/caxtonupgrades" + (f"/{name}" if name else "")


def pods_of(cluster: ClusterUnderTest, ns: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.kube.get(f"/api/v1/namespaces/{ns}/pods",
                                                   labelSelector=f"app.kubernetes.io/instance={name}")["items"]
    return sorted(items, key=lambda p: p["metadata"]["name"])


def upgrade_status(cluster: ClusterUnderTest, ns: str, name: str) -> dict[str, Any]:
    obj = cluster.kube.get_or_none(cxu_path(ns, name))
    return dict((obj or {}).get("status") or {})


def diagnose(cluster: ClusterUnderTest, ns: str, name: str) -> str:
    lines = [json.dumps({"cxc": (cluster.kube.get_or_none(cxc_path(ns, name)) or {}).get("status")}, indent=1)]
    for upgrade in cluster.kube.get(cxu_path(ns))["items"]:
        if upgrade["spec"]["clusterRef"]["name"] == name:
            lines.append(json.dumps({upgrade["metadata"]["name"]: upgrade.get("status")}, indent=1))
    lines.append(cluster.kubectl("get", "pods", "-n", ns, "-o", "wide").stdout)
    for pod in cluster.kube.get(f"/api/v1/namespaces/{OPERATOR_NS}/pods")["items"]:
        lines.append(cluster.kubectl("logs", "-n", OPERATOR_NS, pod["metadata"]["name"], "--tail=100",
                                     check=False).stdout)
    return "\n".join(lines)


def wait_upgrade(cluster: ClusterUnderTest, ns: str, name: str, check: Callable[[dict[str, Any]], bool], what: str,
                 *, cluster_name: str, timeout: float = 300) -> dict[str, Any]:
    try:
        found: dict[str, Any] = wait_for(
            lambda: ((s := upgrade_status(cluster, ns, name)) and check(s) and s) or None,
            timeout=timeout, what=what, interval=0.5)
        return found
    except AssertionError:
        print(diagnose(cluster, ns, cluster_name))
        raise


def make_cluster(cluster: ClusterUnderTest, ns: str, name: str, replicas: int, *, echo: int = 0) -> None:
    """A Running CaxtonCluster of 1.2.0 with every member alive, and `echo` replicas of the echo agent."""
    cluster.apply(yaml.safe_dump({
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonCluster", "metadata": {"name": name},
        "spec": {"replicas": replicas, "version": "1.2.0", "storage": {"size": "64Mi"}, "gossip": GOSSIP,
                 "rebalance": {"replaceAfter": "120s"}},
    }), ns)
    if echo:
        wasm = build_example_agents()["echo"]
        cluster.kube.apply(f"/api/v1/namespaces/{ns}/configmaps/{name}-echo", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-echo", "namespace": ns},
            "binaryData": {"agent.wasm": base64.b64encode(wasm).decode()}}, manager="tests")
        cluster.apply(yaml.safe_dump({
            "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonAgent", "metadata": {"name": f"{name}-echo"},
            "spec": {"clusterRef": {"name": name}, "replicas": echo, "limits": {"deadline": "100ms"},
                     "module": {"configMapRef": {"name": f"{name}-echo", "key": "agent.wasm"},
                                "sha256": hashlib.sha256(wasm).hexdigest()}},
        }), ns)

    def running() -> bool:
        status = (cluster.kube.get(cxc_path(ns, name)).get("status") or {})
        alive = [m for m in status.get("members") or [] if m["state"] == "alive"]
        if status.get("phase") != "Running" or len(alive) != replicas:
            return False
        if echo:
            agent = cluster.kube.get(f"/apis/caxton.dev/v1alpha1/namespaces/{ns}/caxtonagents/{name}-echo")
            return (agent.get("status") or {}).get("readyReplicas") == echo
        return True

    try:
        wait_for(running, timeout=240, what=f"{name}: {replicas} alive members", interval=0.5)
    except AssertionError:
        print(diagnose(cluster, ns, name))
        raise


def start_upgrade(cluster: ClusterUnderTest, ns: str, name: str, target: str, version: str, **spec: Any) -> None:
    cluster.apply(yaml.safe_dump({
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonUpgrade", "metadata": {"name": name},
        "spec": {"clusterRef": {"name": target}, "version": version, **spec},
    }), ns)


def start_load(cluster: ClusterUnderTest, ns: str, name: str, agents: int, rate: float) -> MessageLoad:
    secret = cluster.kube.get(f"/api/v1/namespaces/{ns}/secrets/{name}-api-token")

    def endpoints() -> dict[str, str]:
        return {p["metadata"]["name"]: f"http://{p['status']['podIP']}:8080" for p in pods_of(cluster, ns, name)
                if pod_ready(p) and p.get("status", {}).get("podIP") and not p["metadata"].get("deletionTimestamp")}

    return MessageLoad(endpoints, base64.b64decode(secret["data"]["token"]).decode(),
                       [f"{name}-echo-{i}" for i in range(agents)], rate=rate, reply_timeout=5.0).start()


def events_of(cluster: ClusterUnderTest, ns: str, kind: str, name: str) -> list[dict[str, Any]]:
    items = cluster.kube.get(f"/api/v1/namespaces/{ns}/events",
                             fieldSelector=f"involvedObject.kind={kind},involvedObject.name={name}")["items"]
    return sorted(items, key=lambda e: (e.get("firstTimestamp") or e.get("eventTime") or "",
                                        int(e["metadata"]["resourceVersion"])))


def reasons_until(cluster: ClusterUnderTest, ns: str, upgrade: str, last: str, *, kind: str = "") -> list[str]:
    """The reasons of an upgrade's Events in order, once `last` is among them (Events are
    posted just after the status they follow)."""
    def reasons() -> list[str] | None:
        found = [e["reason"] for e in events_of(cluster, ns, "CaxtonUpgrade", upgrade) if e["type"] == kind or not kind]
        return found if last in found else None

    return wait_for(reasons, timeout=30, what=f"the {last} Event of {upgrade}")


def plugin(cluster: ClusterUnderTest, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`kubectl caxton ...`, found by kubectl's plugin discovery on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "KUBECONFIG": str(cluster.kubeconfig)}
    return subprocess.run([cluster.kubectl_path, "caxton", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


class Watcher:
    """Samples the cluster every half second while an upgrade runs: ready pods, members alive,
    pod identities and the versions `kubectl caxton cluster members` shows."""

    def __init__(self, cluster: ClusterUnderTest, ns: str, name: str, *, members_cli: bool = False) -> None:
        self.cluster, self.ns, self.name, self.members_cli = cluster, ns, name, members_cli
        self.min_ready = 10**6
        self.min_alive = 10**6
        self.uids: dict[str, list[str]] = {}
        self.cli_versions: list[set[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pods = pods_of(self.cluster, self.ns, self.name)
                self.min_ready = min(self.min_ready, sum(1 for p in pods if pod_ready(p)))
                for pod in pods:
                    seen = self.uids.setdefault(pod["metadata"]["name"], [])
                    if not seen or seen[-1] != pod["metadata"]["uid"]:
                        seen.append(pod["metadata"]["uid"])
                status = self.cluster.kube.get(cxc_path(self.ns, self.name)).get("status") or {}
                alive = sum(1 for m in status.get("members") or [] if m["state"] == "alive")
                if status.get("members"):
                    self.min_alive = min(self.min_alive, alive)
                if self.members_cli:
                    out = plugin(self.cluster, "cluster", "members", "-n", self.ns, "--cluster", self.name,
                                 "-o", "json")
                    if out.returncode == 0:
                        self.cli_versions.append({m.get("version") for m in json.loads(out.stdout)
                                                  if m["state"] == "alive"})
            except Exception as err:  # a sample lost to a busy API server is not a finding
                print(f"watcher: {err}")
            self._stop.wait(0.5)


# -- 1: a 5-node upgrade under load ----------------------------------------------------------------------------------

@pytest.mark.timeout(1500)
def test_five_nodes_upgrade_under_load_without_losing_a_message(release: ClusterUnderTest, ns: str) -> None:
    name = "five"
    make_cluster(release, ns, name, 5, echo=10)
    load = start_load(release, ns, name, agents=10, rate=200)
    report: LoadReport | None = None
    try:
        wait_for(lambda: load.report().answered >= 400, timeout=60, what="steady load before the upgrade")
        with Watcher(release, ns, name, members_cli=True) as watcher:
            start_upgrade(release, ns, "five-to-1-3", name, "1.3.0", batchSize=2,
                          canary={"duration": "20s", "maxErrorRate": "1%", "maxP99Latency": "1s",
                                  "minMessages": 100})
            seen_phases: list[str] = []

            def done(s: dict[str, Any]) -> bool:
                if s.get("phase") and (not seen_phases or seen_phases[-1] != s["phase"]):
                    seen_phases.append(s["phase"])
                return s.get("phase") in ("Succeeded", "RolledBack", "Failed")

            final = wait_upgrade(release, ns, "five-to-1-3", done, "the upgrade to finish", cluster_name=name,
                                 timeout=420)
        report = load.stop(drain_timeout=60)
    finally:
        if report is None:
            load.stop(drain_timeout=5)
    print("load during the upgrade:", json.dumps(report.as_dict()))
    assert final["phase"] == "Succeeded", diagnose(release, ns, name)
    assert [p for p in seen_phases if p in ("Canary", "Monitoring", "Rolling", "Succeeded")] == [
        "Canary", "Monitoring", "Rolling", "Succeeded"]
    # Every message counted: none lost; duplicates (at-least-once retries) are reported, not hidden.
    assert report.lost == 0, report.as_dict()
    assert report.answered == report.sent and report.sent > 0
    # Quorum (3 of 5) held throughout, and so did the PodDisruptionBudget (minAvailable 3).
    assert watcher.min_alive >= 3, watcher.min_alive
    assert watcher.min_ready >= 3, watcher.min_ready
    pdb = release.kube.get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{name}")
    assert pdb["spec"]["minAvailable"] == 3
    # Mixed versions during the roll, as `kubectl caxton cluster members` showed them.
    assert any(v == {"1.2.0", "1.3.0"} for v in watcher.cli_versions), watcher.cli_versions[-5:]
    # Each node restarted exactly once, and the cluster now is 1.3.0 (spec and what nodes report).
    assert all(len(uids) == 2 for uids in watcher.uids.values()), watcher.uids
    cxc = release.kube.get(cxc_path(ns, name))
    assert cxc["spec"]["version"] == "1.3.0"
    wait_for(lambda: (release.kube.get(cxc_path(ns, name)).get("status") or {}).get("currentVersion") == "1.3.0",
             timeout=30, what="status.currentVersion 1.3.0 from the nodes")
    assert {m["version"] for m in release.kube.get(cxc_path(ns, name))["status"]["members"]} == {"1.3.0"}
    assert final["progress"] == "5/5"
    assert {g["name"] for g in final["gates"]} >= {"MembersAlive", "GossipConverged", "NoCrashes"}
    # The Events tell the story in order.
    story = reasons_until(release, ns, "five-to-1-3", "UpgradeSucceeded")
    expected = ["UpgradeStarted", "CanaryDrained", "CanaryUpgraded", "CanaryPromoted", "BatchStarted",
                "BatchUpgraded", "BatchStarted", "BatchUpgraded", "UpgradeSucceeded"]
    assert [r for r in story if r in expected] == expected, story
    assert "caxton.dev/upgrade" not in (cxc["metadata"].get("annotations") or {})
    # The operator's own metric says where the upgrade is.
    # The leader's: the standby replica acts on nothing, so it exports no upgrade.
    pod = wait_for(lambda: operator_leader(release), timeout=60, what="the operator's leader")
    exported = release.kube.raw("GET", f"/api/v1/namespaces/{OPERATOR_NS}/pods/{pod}:9090/proxy/metrics").text
    assert (f'caxton_operator_upgrade_phase{{cluster="{name}",namespace="{ns}",phase="Succeeded",'
            f'upgrade="five-to-1-3"}} 1.0') in exported


# -- 2: faulty canaries roll back -----------------------------------------------------------------------------------

def _faulty_canary(cluster: ClusterUnderTest, ns: str, name: str, tag: str, fault: str) -> dict[str, Any]:
    make_cluster(cluster, ns, name, 3, echo=6)
    add_faulty_release(cluster, tag, fault)
    load = start_load(cluster, ns, name, agents=6, rate=60)
    try:
        start_upgrade(cluster, ns, f"{name}-up", name, tag, batchSize=1,
                      canary={"duration": "60s", "maxErrorRate": "5%", "maxP99Latency": "1s", "minMessages": 30},
                      progressDeadline="90s")
        final = wait_upgrade(cluster, ns, f"{name}-up", lambda s: s.get("phase") in ("RolledBack", "Failed",
                                                                                      "Succeeded"),
                             f"{name}: the faulty upgrade to end", cluster_name=name, timeout=300)
    finally:
        load.stop(drain_timeout=5)
    assert final["phase"] == "RolledBack", diagnose(cluster, ns, name)

    def back_on_old() -> bool:
        pods = pods_of(cluster, ns, name)
        status = cluster.kube.get(cxc_path(ns, name)).get("status") or {}
        return (len(pods) == 3 and all(pod_ready(p) and p["spec"]["containers"][0]["image"].endswith(":1.2.0")
                                       for p in pods)
                and [m["state"] for m in status.get("members") or []] == ["alive"] * 3
                and {m.get("version") for m in status["members"]} == {"1.2.0"})

    wait_for(back_on_old, timeout=60, what=f"{name}: every pod on 1.2.0, every member alive")
    assert cluster.kube.get(cxc_path(ns, name))["spec"]["version"] == "1.2.0"
    warnings = reasons_until(cluster, ns, f"{name}-up", "RolledBack", kind="Warning")
    assert warnings.index("RollbackStarted") < warnings.index("RolledBack")
    return final


@pytest.mark.timeout(1200)
def test_faulty_canaries_roll_back_and_name_the_gate(release: ClusterUnderTest, ns: str) -> None:
    with ThreadPoolExecutor(2) as pool:
        crashing = pool.submit(_faulty_canary, release, ns, "crashy", "1.3.0-crash", "crash-at-start")
        slow = pool.submit(_faulty_canary, release, ns, "slowy", "1.3.0-slow", "missed-deadlines")
        crashed, missed = crashing.result(), slow.result()
    print("crash-looping canary:", json.dumps(crashed["failedGates"]))
    print("missed-deadlines canary:", json.dumps(missed["failedGates"]))
    gate = crashed["failedGates"][0]
    assert gate["name"] == "CanaryPodReady" and "restart" in gate["observed"], crashed["failedGates"]
    assert "crashy-2" in gate["message"]
    assert "ErrorRate" in [g["name"] for g in missed["failedGates"]], missed["failedGates"]
    rate = next(g for g in missed["failedGates"] if g["name"] == "ErrorRate")
    assert rate["observed"].startswith("100.00%") or float(rate["observed"].split("%")[0]) > 5, rate
    assert rate["threshold"].startswith("<= 5.00%")
    assert "ErrorRate failed: observed" in missed["rollbackReason"]


# -- 3 and 4: the operator killed during Rolling; paused during Rolling -----------------------------------------------

def _kill_operator(cluster: ClusterUnderTest, leader: str) -> int:
    """SIGKILLs the acting replica's process (found by its pod's address): the standby takes the
    Lease over and resumes the roll from status; the kubelet restarts the killed one."""
    pod = cluster.kube.get(f"/api/v1/namespaces/{OPERATOR_NS}/pods/{leader}")
    return kill_pod_process(pod["status"]["podIP"], b"caxton-operator")


def _operator_restarts(cluster: ClusterUnderTest, name: str) -> int:
    pod = cluster.kube.get(f"/api/v1/namespaces/{OPERATOR_NS}/pods/{name}")
    return int((pod["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0))


def _killed_operator_case(cluster: ClusterUnderTest, ns: str) -> None:
    name = "resume"
    make_cluster(cluster, ns, name, 3, echo=3)
    with Watcher(cluster, ns, name) as watcher:
        start_upgrade(cluster, ns, "resume-up", name, "1.3.0", batchSize=1, canary={"duration": "0s"})
        wait_upgrade(cluster, ns, "resume-up", lambda s: s.get("phase") == "Rolling", "Rolling",
                     cluster_name=name, timeout=420)
        leader = wait_for(lambda: operator_leader(cluster), timeout=60, what="the operator's leader")
        before = _operator_restarts(cluster, leader)
        assert _kill_operator(cluster, leader) >= 1
        wait_for(lambda: _operator_restarts(cluster, leader) > before, timeout=60,
                 what="the operator to be restarted")
        final = wait_upgrade(cluster, ns, "resume-up", lambda s: s.get("phase") in ("Succeeded", "RolledBack",
                                                                                    "Failed"),
                             "the upgrade to finish after the operator restarted", cluster_name=name, timeout=300)
    assert final["phase"] == "Succeeded", diagnose(cluster, ns, name)
    # No pod restarted twice: each ordinal had exactly two pods (1.2.0, then 1.3.0), none restarted.
    assert all(len(uids) == 2 for uids in watcher.uids.values()), watcher.uids
    assert all(p["status"]["containerStatuses"][0]["restartCount"] == 0 for p in pods_of(cluster, ns, name))
    assert cluster.kube.get(cxc_path(ns, name))["spec"]["version"] == "1.3.0"


def _paused_case(cluster: ClusterUnderTest, ns: str) -> None:
    name = "hold"
    make_cluster(cluster, ns, name, 3)
    start_upgrade(cluster, ns, "hold-up", name, "1.3.0", batchSize=1, canary={"duration": "0s"})
    wait_upgrade(cluster, ns, "hold-up", lambda s: s.get("phase") == "Rolling", "Rolling", cluster_name=name,
                 timeout=420)
    cluster.kube.patch(cxu_path(ns, "hold-up"), {"spec": {"paused": True}})
    paused = wait_upgrade(cluster, ns, "hold-up", lambda s: s.get("phase") == "Paused", "Paused",
                          cluster_name=name)
    assert paused["pausedFrom"] == "Rolling" and "resume" in paused["message"]

    def snapshot() -> list[tuple[str, str, str, bool]]:
        return [(p["metadata"]["name"], p["metadata"]["uid"], p["metadata"]["labels"].get(
            "controller-revision-hash", ""), pod_ready(p) and "deletionTimestamp" not in p["metadata"])
            for p in pods_of(cluster, ns, name)]

    # A restart already under way when the pause came finishes first; then nothing moves.
    settled = wait_for(lambda: (s := snapshot()) and len(s) == 3 and all(r for *_, r in s) and s, timeout=90,
                       what="every pod Ready (none terminating) while paused")
    # A second upgrade of the same cluster waits, and says why.
    start_upgrade(cluster, ns, "hold-second", name, "1.3.1", batchSize=1, canary={"duration": "0s"})
    waiting = wait_upgrade(cluster, ns, "hold-second", lambda s: s.get("reason") == "WaitingForUpgrade",
                           "the second upgrade to wait", cluster_name=name)
    assert waiting["phase"] == "Pending" and "hold-up" in waiting["message"]
    assert "WaitingForUpgrade" in cluster.kubectl("get", "cxu", "hold-second", "-n", ns).stdout
    ends = time.monotonic() + 30
    while time.monotonic() < ends:
        assert snapshot() == settled, "a pod changed while the upgrade was paused"
        time.sleep(2)
    cluster.kube.patch(cxu_path(ns, "hold-up"), {"spec": {"paused": False}})
    final = wait_upgrade(cluster, ns, "hold-up", lambda s: s.get("phase") in ("Succeeded", "RolledBack", "Failed"),
                         "the resumed upgrade to finish", cluster_name=name, timeout=300)
    assert final["phase"] == "Succeeded", diagnose(cluster, ns, name)
    reasons = reasons_until(cluster, ns, "hold-up", "UpgradeSucceeded")
    assert reasons.index("UpgradePaused") < reasons.index("UpgradeResumed") < reasons.index("UpgradeSucceeded")
    # The second one goes once the first has finished.
    second = wait_upgrade(cluster, ns, "hold-second", lambda s: s.get("phase") in ("Succeeded", "RolledBack",
                                                                                   "Failed"),
                          "the second upgrade to run", cluster_name=name, timeout=300)
    assert second["phase"] == "Succeeded", diagnose(cluster, ns, name)
    # A downgrade is refused with a message, and changes nothing.
    start_upgrade(cluster, ns, "hold-down", name, "1.2.0")
    refused = wait_upgrade(cluster, ns, "hold-down", lambda s: s.get("phase") == "Failed", "the refusal",
                           cluster_name=name)
    assert refused["reason"] == "DowngradeRefused" and "allowDowngrade" in refused["message"]
    assert {p["spec"]["containers"][0]["image"] for p in pods_of(cluster, ns, name)} == {
        "ghcr.io/caxton/caxton-node:1.3.1"}
    # Editing spec.version goes through the same roller, without the canary hold.
    with Watcher(cluster, ns, name) as watcher:
        edited = cluster.kube.patch(cxc_path(ns, name), {"spec": {"version": "1.3.2"}})
        made_name = f"hold-to-1-3-2-g{edited['metadata']['generation']}"
        implicit = wait_upgrade(cluster, ns, made_name, lambda s: s.get("phase") in (
            "Succeeded", "RolledBack", "Failed"), "the implicit upgrade", cluster_name=name, timeout=300)
    assert implicit["phase"] == "Succeeded", diagnose(cluster, ns, name)
    made = cluster.kube.get(cxu_path(ns, made_name))
    assert made["metadata"]["labels"]["caxton.dev/implicit"] == "true"
    assert made["spec"]["canary"]["duration"] == "0s"
    assert made["metadata"]["ownerReferences"][0]["name"] == name
    assert all(len(uids) == 2 for uids in watcher.uids.values()), watcher.uids
    assert {p["spec"]["containers"][0]["image"] for p in pods_of(cluster, ns, name)} == {
        "ghcr.io/caxton/caxton-node:1.3.2"}
    # A change the nodes need a restart for (their gossip settings) goes through the roller too:
    # every node drained and restarted once, not rolled by the StatefulSet controller.
    with Watcher(cluster, ns, name) as watcher:
        edited = cluster.kube.patch(cxc_path(ns, name), {"spec": {"gossip": {"probeInterval": "2s"}}})
        made_name = f"{name}-restart-g{edited['metadata']['generation']}"
        restart = wait_upgrade(cluster, ns, made_name, lambda s: s.get("phase") in (
            "Succeeded", "RolledBack", "Failed"), "the restart for the new template", cluster_name=name, timeout=300)
    assert restart["phase"] == "Succeeded", diagnose(cluster, ns, name)
    assert cluster.kube.get(cxu_path(ns, made_name))["spec"]["restart"] is True
    assert all(len(uids) == 2 for uids in watcher.uids.values()), watcher.uids
    reasons = reasons_until(cluster, ns, made_name, "UpgradeSucceeded")
    assert reasons.count("BatchStarted") == 2 and reasons.index("CanaryUpgraded") < reasons.index("BatchStarted")
    assert "TemplateChange" in [e["reason"] for e in events_of(cluster, ns, "CaxtonCluster", name)]
    assert {p["spec"]["containers"][0]["image"] for p in pods_of(cluster, ns, name)} == {
        "ghcr.io/caxton/caxton-node:1.3.2"}


@pytest.mark.timeout(1500)
# Known race, issue #11: a pause that lands after the roller lowered the StatefulSet partition but before
# the StatefulSet controller acted lets that one pod restart while paused (seen once in four runs).
def test_killed_operator_resumes_and_pause_holds(release: ClusterUnderTest, ns: str) -> None:
    """Acceptance 3, and 4-5 beside it (independent clusters, one operator)."""
    with ThreadPoolExecutor(2) as pool:
        paused = pool.submit(_paused_case, release, ns)
        time.sleep(5)  # the paused case gets to Rolling first; the kill then hits both
        killed = pool.submit(_killed_operator_case, release, ns)
        killed.result()
        paused.result()


# -- 6: every `kubectl caxton cluster upgrade` verb, and rolling-restart ----------------------------------------------

@pytest.mark.timeout(1800)
def test_kubectl_caxton_upgrade_verbs(release: ClusterUnderTest, ns: str) -> None:
    name = "cli"
    make_cluster(release, ns, name, 3, echo=3)
    where = ("-n", ns, "--cluster", name)
    assert plugin(release, "cluster", "upgrade", "status", *where).returncode == 4
    bad = plugin(release, "cluster", "upgrade", "start", "--version", "banana", *where)
    assert bad.returncode == 2 and "semantic version" in bad.stderr

    started = plugin(release, "cluster", "upgrade", "start", "--version", "v1.3.0", "--canary-duration", "10m",
                     "--batch-size", "1", *where)
    assert started.returncode == 0, started.stderr
    assert "caxtonupgrade/cli-to-1-3-0 created" in started.stdout
    again = plugin(release, "cluster", "upgrade", "start", "--version", "1.3.0", *where)
    assert again.returncode == 1 and "already exists" in again.stderr
    wait_upgrade(release, ns, "cli-to-1-3-0", lambda s: s.get("phase") == "Monitoring" and len(
        s.get("gates") or []) == 6, "the canary hold, judged by every gate", cluster_name=name, timeout=300)
    shown = plugin(release, "cluster", "upgrade", "status", *where)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "PHASE: Monitoring" in lines and "PROGRESS: 1/3 nodes upgraded" in lines, shown.stdout
    assert any(line.startswith("CANARY: cli-2") for line in lines) and any(line.startswith("ETA: ") for line in lines)
    gate_lines = {line.split()[0]: line for line in lines if line.split() and line.split()[0] in (
        "CanaryPodReady", "MembersAlive", "ErrorRate", "P99Latency", "NoCrashes", "GossipConverged")}
    assert len(gate_lines) == 6 and "Inconclusive" in gate_lines["ErrorRate"], shown.stdout
    as_json = json.loads(plugin(release, "cluster", "upgrade", "status", *where, "-o", "json").stdout)
    assert as_json["status"]["phase"] == "Monitoring"

    paused = plugin(release, "cluster", "upgrade", "pause", *where)
    assert paused.returncode == 0 and "PHASE: Paused (paused in Monitoring)" in paused.stdout, paused.stderr
    resumed = plugin(release, "cluster", "upgrade", "resume", *where)
    assert resumed.returncode == 0 and "PHASE: Monitoring" in resumed.stdout, resumed.stderr
    promoted = plugin(release, "cluster", "upgrade", "promote", *where)
    assert promoted.returncode == 0, promoted.stderr
    assert upgrade_status(release, ns, "cli-to-1-3-0")["phase"] not in ("Canary", "Monitoring")
    rolled = plugin(release, "cluster", "upgrade", "rollback", *where, timeout=900)
    assert rolled.returncode == 0 and "PHASE: RolledBack" in rolled.stdout, rolled.stderr
    nothing = plugin(release, "cluster", "upgrade", "rollback", "--name", "cli-to-1-3-0", *where)
    assert nothing.returncode == 1 and "nothing to roll back" in nothing.stderr
    assert {p["spec"]["containers"][0]["image"] for p in pods_of(release, ns, name)} == {
        "ghcr.io/caxton/caxton-node:1.2.0"}

    done = plugin(release, "cluster", "upgrade", "start", "--version", "1.3.0", "--canary-duration", "0s",
                  "--batch-size", "2", "--name", "cli-again", "--wait", *where, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "PHASE: Succeeded" in done.stdout and "PROGRESS: 3/3 nodes upgraded" in done.stdout
    watched = plugin(release, "cluster", "upgrade", "status", "--watch", "--name", "cli-again", *where)
    assert watched.returncode == 0 and "PHASE: Succeeded" in watched.stdout

    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods_of(release, ns, name)}
    restarted = plugin(release, "cluster", "rolling-restart", "--reason", "new node kernel", "--wait", *where,
                       timeout=900)
    assert restarted.returncode == 0, restarted.stderr
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods_of(release, ns, name)}
    assert set(after) == set(before) and all(after[pod] != before[pod] for pod in before)
    assert {p["spec"]["containers"][0]["image"] for p in pods_of(release, ns, name)} == {
        "ghcr.io/caxton/caxton-node:1.3.0"}
    restart = [u for u in release.kube.get(cxu_path(ns))["items"]
               if u["spec"].get("restart") and u["spec"]["clusterRef"]["name"] == name]
    assert len(restart) == 1 and restart[0]["status"]["phase"] == "Succeeded"
    started_event = next(e for e in events_of(release, ns, "CaxtonUpgrade", restart[0]["metadata"]["name"])
                         if e["reason"] == "UpgradeStarted")
    assert "rolling restart" in started_event["message"] and "new node kernel" in started_event["message"]
