"""End to end: rebalancing, adding and removing nodes on real pods (docs/rebalance.md).

One operator install and one CaxtonCluster for the module; the cases run in order on it:
60 agents with 50 on one node (a dry run moves nothing; automatic rebalancing evens them,
each move an Event), 3 -> 5 nodes under counted load, then a middle node removed under load
while the stateful counter agent on it keeps its count. Verbs go through kubectl's plugin
discovery with -o json.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.operator.test_upgrade_e2e import GOSSIP, cxc_path, diagnose, events_of, plugin, pods_of
from tests.support.agents import build_example_agents
from tests.support.cluster import ClusterUnderTest, pod_ready, temporary_namespace
from tests.support.load import MessageLoad
from tests.support.operator_release import operator_release
from tests.support.pod_proxy import NodeProxy
from tests.support.waiting import wait_for

NAME = "rb"
ECHOES = [f"e-{i}" for i in range(60)]


@pytest.fixture(scope="module")
def release(crds: ClusterUnderTest) -> Iterator[ClusterUnderTest]:
    yield from operator_release(crds)


@pytest.fixture(scope="module")
def ns(release: ClusterUnderTest) -> Iterator[str]:
    yield from temporary_namespace(release)


class Nodes(NodeProxy):
    """The cluster's node API through the pod proxy, as the operator and the plugin reach it."""

    def __init__(self, cluster: ClusterUnderTest, ns: str) -> None:
        super().__init__(cluster, ns, NAME)

    def agents(self, pods: list[str]) -> dict[str, list[str]]:
        return {pod: sorted(a["id"] for a in self.call(pod, "GET", "/v1/agents")) for pod in pods}

    def load(self) -> MessageLoad:
        def endpoints() -> dict[str, str]:
            return {p["metadata"]["name"]: f"http://{p['status']['podIP']}:8080"
                    for p in pods_of(self.cluster, self.ns, NAME)
                    if pod_ready(p) and p.get("status", {}).get("podIP") and not p["metadata"].get("deletionTimestamp")}

        return MessageLoad(endpoints, self.token, ECHOES, rate=40, reply_timeout=8.0)


def collect(nodes: Nodes, pod: str, mailbox: str, count: int) -> list[dict[str, Any]]:
    """Replies in `mailbox` on `pod` until `count` arrived (bounded)."""
    replies: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while len(replies) < count and time.monotonic() < deadline:
        replies += nodes.call(pod, "GET", f"/v1/mailboxes/{mailbox}?wait=1")
    return replies


def status(cluster: ClusterUnderTest, ns: str) -> dict[str, Any]:
    return dict(cluster.kube.get(cxc_path(ns, NAME)).get("status") or {})


def imbalance(counts: list[int]) -> float:
    mean = sum(counts) / len(counts)
    return max(abs(c - mean) for c in counts) / mean


def json_of(result: Any) -> Any:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def nodes(release: ClusterUnderTest, ns: str) -> Nodes:
    """Three nodes with automatic rebalancing off, and 60 echo agents: 50 on rb-0, 5 on each other."""
    release.apply(yaml.safe_dump({
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonCluster", "metadata": {"name": NAME},
        "spec": {"replicas": 3, "version": "1.2.0", "storage": {"size": "64Mi"}, "gossip": GOSSIP,
                 "rebalance": {"strategy": "none", "threshold": "20%", "replaceAfter": "120s"}},
    }), ns)
    wait_for(lambda: status(release, ns).get("phase") == "Running"
             and sum(m["state"] == "alive" for m in status(release, ns).get("members") or []) == 3,
             timeout=240, what="3 alive members")
    api = Nodes(release, ns)
    wasm = base64.b64encode(build_example_agents()["echo"]).decode()
    for i, agent in enumerate(ECHOES):
        pod = f"{NAME}-0" if i < 50 else f"{NAME}-{1 + i % 2}"
        api.call(pod, "POST", "/v1/agents", json={"id": agent, "wasm": wasm, "limits": {"deadline": "2s"}})
    return api


def test_a_dry_run_moves_nothing_and_automatic_rebalancing_evens_the_load(release: ClusterUnderTest, ns: str,
                                                                           nodes: Nodes) -> None:
    pods = [f"{NAME}-{i}" for i in range(3)]
    before = nodes.agents(pods)
    assert [len(before[p]) for p in pods] == [50, 5, 5]
    dry = json_of(plugin(release, "cluster", "rebalance", "--strategy", "least-loaded", "--dry-run",
                         "-n", ns, "-o", "json", timeout=120))
    assert dry["phase"] == "Proposed" and dry["dryRun"] is True
    assert len(dry["plan"]) >= 20 and {m["from"] for m in dry["plan"]} == {f"{NAME}-0"}
    assert dry["imbalance"] == "150%"  # (50 - 20) / 20
    table = plugin(release, "cluster", "rebalance", "--dry-run", "-n", ns, timeout=120)
    assert table.returncode == 0 and table.stdout.splitlines()[0].split() == ["AGENT", "FROM", "TO", "REASON"]
    time.sleep(6)  # more than a round of the rebalancer: it must still have moved nothing
    assert nodes.agents(pods) == before
    assert not [e for e in events_of(release, ns, "CaxtonCluster", NAME) if e["reason"] == "AgentMoved"]

    release.kubectl("patch", "cxc", NAME, "-n", ns, "--type=merge", "-p",
                    '{"spec": {"rebalance": {"strategy": "least-loaded"}}}')
    try:
        done = wait_for(lambda: (s := status(release, ns).get("rebalance") or {}).get("phase") == "Done" and s,
                        timeout=600, what="automatic rebalancing to finish", interval=1)
    except AssertionError:
        print(diagnose(release, ns, NAME))
        raise
    after = nodes.agents(pods)
    counts = [len(after[p]) for p in pods]
    assert sorted(a for agents in after.values() for a in agents) == sorted(ECHOES)
    assert imbalance(counts) <= 0.2, counts
    moved = [e for e in events_of(release, ns, "CaxtonCluster", NAME) if e["reason"] == "AgentMoved"]
    assert len(moved) == done["done"] == sum(max(len(before[p]) - len(after[p]), 0) for p in pods)
    for event in moved:  # "<agent>: <from> -> <to> (<why>)", and the agent is where the Event says
        agent, rest = event["message"].split(": ", 1)
        target = rest.split(" -> ")[1].split(" ")[0]
        assert agent in before[f"{NAME}-0"] and agent in after[target]
    assert done["trigger"] == "Imbalance" and done["failed"] == 0


def test_adding_two_nodes_under_load_loses_nothing(release: ClusterUnderTest, ns: str, nodes: Nodes) -> None:
    load = nodes.load().start()
    try:
        wait_for(lambda: load.report().answered >= 100, timeout=120, what="the load to get going")
        added = json_of(plugin(release, "cluster", "add-node", "--count", "2", "-n", ns, "-o", "json",
                               "--timeout", "600", timeout=660))
        assert added["added"] == [f"{NAME}-3", f"{NAME}-4"]
        wait_for(lambda: (status(release, ns).get("rebalance") or {}).get("phase") == "Done"
                 and (status(release, ns).get("rebalance") or {}).get("trigger") == "ScaleOut", timeout=600,
                 what="the rebalance after the scale-out", interval=1)
    finally:
        report = load.stop(drain_timeout=60)
    print(f"scale 3 -> 5 under load: {report.as_dict()}")
    pods = [f"{NAME}-{i}" for i in range(5)]
    counts = [len(a) for a in nodes.agents(pods).values()]
    assert sum(counts) == 60 and min(counts) > 0 and imbalance(counts) <= 0.2, counts
    assert report.sent > 200 and report.lost == 0, report.as_dict()
    assert report.dropped == 0, report.as_dict()  # duplicates are reported, none was silently dropped


def test_removing_a_middle_node_under_load_loses_nothing_and_keeps_state(release: ClusterUnderTest, ns: str,
                                                                       nodes: Nodes) -> None:
    victim = f"{NAME}-1"
    wasm = base64.b64encode(build_example_agents()["counter"]).decode()
    nodes.call(victim, "POST", "/v1/agents", json={"id": "tally", "wasm": wasm})
    nodes.call(victim, "GET", "/v1/mailboxes/tester")
    for _ in range(3):
        nodes.call(victim, "POST", "/v1/messages", json={"performative": "request", "sender": "tester",
                                                         "receiver": "tally", "content": None})
    replies = collect(nodes, victim, "tester", 3)
    assert [r["content"]["count"] for r in replies] == [1, 2, 3]
    on_victim = set(nodes.agents([victim])[victim])

    load = nodes.load().start()
    try:
        wait_for(lambda: load.report().answered >= 100, timeout=120, what="the load to get going")
        removed = json_of(plugin(release, "cluster", "remove", "--node", victim, "-n", ns, "-o", "json",
                                 "--timeout", "600", timeout=660))
    finally:
        report = load.stop(drain_timeout=60)
    print(f"remove {victim} under load: {report.as_dict()}; {removed}")
    assert removed["phase"] == "Done" and removed["moved"] == len(on_victim)
    assert f"{len(on_victim)} agent(s) moved off" in removed["message"] and "fresh member" in removed["message"]
    assert (status(release, ns).get("removal") or {})["message"] == removed["message"]
    assert report.lost == 0 and report.dropped == 0, report.as_dict()
    # The counter went elsewhere with its count; the node came back empty, as a new member.
    pods = [f"{NAME}-{i}" for i in range(5)]
    where = [p for p, agents in nodes.agents(pods).items() if "tally" in agents]
    assert len(where) == 1  # one copy (rebalancing may have brought it to the fresh node since)
    home = where[0]
    nodes.call(home, "GET", "/v1/mailboxes/tester2")
    nodes.call(home, "POST", "/v1/messages", json={"performative": "request", "sender": "tester2",
                                                   "receiver": "tally", "content": None})
    got = collect(nodes, home, "tester2", 1)
    assert got[0]["content"]["count"] == 4
    reasons = [e["reason"] for e in events_of(release, ns, "CaxtonCluster", NAME)]
    assert "NodeReplacing" in reasons and "NodeReplaced" in reasons


def test_resources_reports_each_nodes_measurements(release: ClusterUnderTest, ns: str, nodes: Nodes) -> None:
    rows = json_of(plugin(release, "resources", "-n", ns, "-o", "json", timeout=120))
    assert sorted(r["node"] for r in rows) == [f"{NAME}-{i}" for i in range(5)]
    assert sum(r["agents"] for r in rows) >= 60
    for row in rows:
        assert row["memoryBytes"] > 10 * 2**20 and row["memoryLimitBytes"] >= row["memoryBytes"]
    table = plugin(release, "resources", "-n", ns, timeout=120)
    assert table.stdout.splitlines()[0].split()[:4] == ["NODE", "CPU", "MEMORY", "AGENTS"]


def handled_per_second(nodes: Nodes, pods: list[str], seconds: float) -> float:
    def total() -> int:
        return sum(a["handled"] for pod in pods for a in nodes.call(pod, "GET", "/v1/agents"))

    before, started = total(), time.monotonic()
    time.sleep(seconds)
    return (total() - before) / (time.monotonic() - started)


def test_shed_load_and_memory_gc_through_the_plugin(release: ClusterUnderTest, ns: str, nodes: Nodes) -> None:
    pods = [f"{NAME}-{i}" for i in range(5)]
    # No moves while the rate is measured (a moved agent's handled count starts again on its new node).
    release.kubectl("patch", "cxc", NAME, "-n", ns, "--type=merge", "-p",
                    '{"spec": {"rebalance": {"strategy": "none"}}}')
    wait_for(lambda: (status(release, ns).get("rebalance") or {}).get("phase") in ("Balanced", "Done"),
             timeout=120, what="rebalancing to stop", interval=1)
    wasm = base64.b64encode(build_example_agents()["echo"]).decode()
    low = [f"low-{i}" for i in range(5)]
    for i, agent in enumerate(low):  # one low-priority agent per node, carrying most of the traffic below
        nodes.call(pods[i], "POST", "/v1/agents", json={"id": agent, "wasm": wasm, "priority": "low"})
    load = MessageLoad(nodes.load()._endpoints_source, nodes.token, low * 3 + ECHOES[:5], rate=60,
                       reply_timeout=30.0).start()
    try:
        wait_for(lambda: load.report().answered >= 200, timeout=120, what="the load to get going")
        before = handled_per_second(nodes, pods, 4)
        shed = json_of(plugin(release, "cluster", "shed-load", "--percentage", "50", "-n", ns, "-o", "json",
                              timeout=120))
        after = handled_per_second(nodes, pods, 4)
    finally:
        load.stop(drain_timeout=0)
    print(f"shed-load 50% on the cluster: {before:.1f} -> {after:.1f} handled/s; {shed}")
    assert sorted(n["node"] for n in shed) == pods
    for node in shed:  # each node suspended its low-priority agent before anything else
        assert node["suspended"] and node["suspended"][0]["priority"] == "low", node
    assert after <= before * 0.6, (before, after)
    resumed = plugin(release, "agents", "resume", "--priority", "low", "-n", ns, "--node", pods[0], "-o", "json")
    assert resumed.returncode == 0 and "low-0" in json.loads(resumed.stdout)["suspended"]
    freed = json_of(plugin(release, "memory", "gc", "--aggressive", "-n", ns, "-o", "json", timeout=180))
    assert sorted(n["node"] for n in freed) == pods
    # Aggressive: every idle agent (not suspended, nothing queued) got a fresh instance, with each node's RSS.
    assert sum(len(n["restarted"]) for n in freed) >= 40 and all(n["rssBeforeBytes"] > 0 for n in freed)
