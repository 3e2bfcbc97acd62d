"""End to end: `helm install` runs the operator in the cluster (a pod with its service
account); it turns a CaxtonCluster into node processes that form a cluster, places a
CaxtonAgent's replicas, reports a killed node (not as a partition), scales with draining
and without restarting the staying nodes,
keeps renewing certificates while paused (a new handshake presents the renewed one), holds
spec changes and placement while paused and applies the latest spec after, and cleans up.

The tests share one release and one cluster and run in file order: each step starts
from where the previous one left the cluster.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from caxton_node.peers.channel import client_context
from cryptography import x509

from tests.support.agents import build_example_agents
from tests.support.cluster import ClusterUnderTest, temporary_namespace
from tests.support.netfault import NetworkPartition
from tests.support.operator_release import CHART, OPERATOR_NS, RELEASE, helm, kill_pod_process, operator_release
from tests.support.pod_proxy import NodeProxy
from tests.support.waiting import wait_for

OPERATOR_SA = f"system:serviceaccount:{OPERATOR_NS}:{RELEASE}"


@pytest.fixture(scope="module")
def release(crds: ClusterUnderTest) -> Iterator[ClusterUnderTest]:
    if not crds.has_process_kubelet and not os.environ.get("CAXTON_TEST_IMAGES"):
        pytest.skip("the caxton images must be loadable by this cluster's nodes: build them "
                    "(images/Containerfile), load them (kind load docker-image) and set CAXTON_TEST_IMAGES=1")
    yield from operator_release(crds)


@pytest.fixture(scope="module")
def ns(release: ClusterUnderTest) -> Iterator[str]:
    yield from temporary_namespace(release)


def kubectl_json(cluster: ClusterUnderTest, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def cluster_status(cluster: ClusterUnderTest, ns: str) -> dict[str, Any]:
    status: dict[str, Any] = kubectl_json(cluster, "get", "cxc", "demo", "-n", ns).get("status") or {}
    return status


def agent_status(cluster: ClusterUnderTest, ns: str, name: str = "echo") -> dict[str, Any]:
    status: dict[str, Any] = kubectl_json(cluster, "get", "cxa", name, "-n", ns).get("status") or {}
    return status


def alive(status: dict[str, Any]) -> list[str]:
    return sorted(m["name"] for m in status.get("members") or [] if m["state"] == "alive")


def events(cluster: ClusterUnderTest, ns: str, reason: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl_json(cluster, "get", "events", "-n", ns,
                                               "--field-selector", f"reason={reason}")["items"]
    return items


def operator_log(cluster: ClusterUnderTest) -> str:
    """The operator container's log (`kubectl logs`)."""
    pods = kubectl_json(cluster, "get", "pods", "-n", OPERATOR_NS)["items"]
    return "\n".join(cluster.kubectl("logs", "-n", OPERATOR_NS, pod["metadata"]["name"], "--tail=80",
                                    check=False).stdout for pod in pods)


def wait_cluster(cluster: ClusterUnderTest, ns: str, check: Any, what: str, timeout: float = 180) -> dict[str, Any]:
    try:
        result: dict[str, Any] = wait_for(lambda: (s := cluster_status(cluster, ns)) and check(s) and s,
                                          timeout=timeout, what=what, interval=0.5)
        return result
    except AssertionError:
        print(json.dumps(cluster_status(cluster, ns), indent=1))
        print(cluster.kubectl("get", "pods", "-A", "-o", "wide").stdout)
        if cluster.plane is not None:
            print(operator_log(cluster))
        raise


class Proxy(NodeProxy):
    """A node's API through the API server's pod proxy, as the plugin and operator reach it."""

    def echo_round_trip(self, via: str, receiver: str, content: Any) -> bool:
        """Sends to `receiver` through node `via`; True once the echo comes back there."""
        mailbox = f"tester-{uuid.uuid4().hex[:6]}"
        self.call(via, "GET", f"/v1/mailboxes/{mailbox}")
        resp = self.cluster.kube.raw("POST", f"/api/v1/namespaces/{self.ns}/pods/{via}:8080/proxy/v1/messages",
                                     headers=self.headers, json={
                                         "performative": "request", "sender": mailbox, "receiver": receiver,
                                         "content": content, "conversation_id": mailbox})
        if resp.status_code != 202:
            return False
        replies = self.call(via, "GET", f"/v1/mailboxes/{mailbox}", params={"wait": 3})
        return any(r["content"]["content"] == content and r["sender"] == receiver for r in replies)


def delete_agent(cluster: ClusterUnderTest, ns: str, name: str) -> None:
    """Deletes a CaxtonAgent and waits for its finalizer (the replicas leave every node)."""
    deleted = cluster.kubectl("delete", "cxa", name, "-n", ns, "--wait=true", "--timeout=120s", check=False)
    if deleted.returncode != 0:
        print(cluster.kubectl("get", "cxa", name, "-n", ns, "-o", "yaml", check=False).stdout)
        if cluster.plane is not None:
            print(operator_log(cluster))
        raise AssertionError(f"deleting CaxtonAgent {name}: {deleted.stderr.strip()}")


def plugin(cluster: ClusterUnderTest, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`kubectl caxton ...`, found by the pinned kubectl on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "KUBECONFIG": str(cluster.kubeconfig)}
    return subprocess.run([cluster.kubectl_path, "caxton", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def kill_node_process(cluster: ClusterUnderTest, ns: str, pod: str) -> int:
    """SIGKILLs the node process of `pod` (found by the pod address the kubelet gave it)."""
    return kill_pod_process(kubectl_json(cluster, "get", "pod", pod, "-n", ns)["status"]["podIP"], b"server")


# -- the steps ---------------------------------------------------------------------------------------------

def test_helm_runs_the_operator_in_cluster_with_least_privilege(release: ClusterUnderTest) -> None:
    helm(release, "lint", str(CHART))
    bad = subprocess.run([release.helm_path, "template", "x", str(CHART), "--set", "logLevel=LOUD"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "logLevel" in bad.stderr  # values.schema.json
    pods = kubectl_json(release, "get", "pods", "-n", OPERATOR_NS)["items"]
    # Two replicas (one leads, one stands by: tests/operator/test_operator_ha_e2e.py).
    assert len(pods) == 2 and all(pod["status"]["phase"] == "Running" for pod in pods)
    for pod in pods:
        assert pod["spec"]["serviceAccountName"] == RELEASE
        assert not any(e["name"] == "KUBECONFIG" for e in pod["spec"]["containers"][0].get("env") or [])

    def can(verb: str, resource: str) -> bool:
        resource, _, sub = resource.partition("/")
        out = release.kubectl("auth", "can-i", verb, resource, f"--subresource={sub}", f"--as={OPERATOR_SA}",
                              "-n", "default", check=False).stdout
        return out.strip() == "yes"

    assert can("patch", "caxtonclusters.caxton.dev/status") and can("create", "pods/proxy")
    assert not can("update", "caxtonclusters.caxton.dev/status")
    assert can("patch", "statefulsets.apps") and can("create", "events")
    assert not can("delete", "configmaps") and not can("delete", "secrets")
    # Pods: only the short-lived one that serves a pvc:// backup destination (docs/backup.md).
    assert can("create", "pods") and not can("update", "pods") and not can("get", "nodes")


def test_cluster_forms_and_reports_its_members(release: ClusterUnderTest, ns: str) -> None:
    release.apply(yaml.safe_dump({
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonCluster", "metadata": {"name": "demo"},
        "spec": {"replicas": 3, "version": "1.2.0", "storage": {"size": "64Mi"},
                 "gossip": {"interval": "100ms", "probeInterval": "500ms", "probeTimeout": "200ms"},
                 "rebalance": {"replaceAfter": "60s"}},
    }), ns)
    final = wait_cluster(release, ns, lambda s: s.get("phase") == "Running", "the CaxtonCluster to be Running")
    assert final["readyReplicas"] == 3
    assert alive(final) == ["demo-0", "demo-1", "demo-2"]
    assert final["currentVersion"] == "1.2.0"
    ready = next(c for c in final["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "AllMembersAlive"
    assert final["certificates"]["notAfter"] > final["certificates"]["renewAt"]
    pods = kubectl_json(release, "get", "pods", "-n", ns)["items"]
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"ghcr.io/caxton/caxton-node:1.2.0"}
    assert events(release, ns, "Provisioning") and events(release, ns, "PhaseRunning")

    members = plugin(release, "cluster", "members", "-n", ns, "-o", "json")
    assert members.returncode == 0, members.stderr
    assert sorted((m["id"], m["state"]) for m in json.loads(members.stdout)) == [
        ("demo-0", "alive"), ("demo-1", "alive"), ("demo-2", "alive")]
    table = plugin(release, "cluster", "members", "-n", ns, "--cluster", "demo").stdout.splitlines()
    assert table[0].split()[:4] == ["NODE-ID", "STATUS", "LAST-SEEN", "AGENTS"]
    assert "Status: HEALTHY (majority partition)" in plugin(release, "cluster", "status", "-n", ns).stdout
    missing = plugin(release, "cluster", "members", "-n", ns, "--cluster", "nope")
    assert missing.returncode == 4 and "no CaxtonCluster nope" in missing.stderr


def _apply_echo_agent(cluster: ClusterUnderTest, ns: str, wasm: bytes, sha256: str) -> None:
    cluster.kube.apply(f"/api/v1/namespaces/{ns}/configmaps/echo-wasm", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "echo-wasm", "namespace": ns},
        "binaryData": {"agent.wasm": base64.b64encode(wasm).decode()},
    }, manager="tests")
    cluster.apply(yaml.safe_dump({
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonAgent", "metadata": {"name": "echo"},
        "spec": {"clusterRef": {"name": "demo"}, "replicas": 2,
                 "module": {"configMapRef": {"name": "echo-wasm", "key": "agent.wasm"}, "sha256": sha256}},
    }), ns)


def test_agent_replicas_are_placed_and_answer_across_nodes(release: ClusterUnderTest, ns: str) -> None:
    wasm = build_example_agents()["echo"]
    # A wrong checksum is refused with a reason, and nothing is deployed.
    _apply_echo_agent(release, ns, wasm, "0" * 64)
    refused = wait_for(lambda: next((c for c in agent_status(release, ns).get("conditions") or []
                                     if c["reason"] == "ChecksumMismatch"), None), timeout=60,
                       what="the checksum mismatch to be reported")
    assert hashlib.sha256(wasm).hexdigest() in refused["message"]
    assert all(not Proxy(release, ns).call(f"demo-{i}", "GET", "/v1/agents") for i in range(3))

    _apply_echo_agent(release, ns, wasm, hashlib.sha256(wasm).hexdigest())
    status = wait_for(lambda: (s := agent_status(release, ns)).get("readyReplicas") == 2 and s, timeout=60,
                      what="both echo replicas to run")
    placement = {p["replica"]: p["node"] for p in status["placement"]}
    assert sorted(placement) == ["echo-0", "echo-1"]
    assert len(set(placement.values())) == 2, "replicas spread over two nodes"
    columns = release.kubectl("get", "cxa", "echo", "-n", ns).stdout.split()
    assert columns[columns.index("AGE") + 1:][:4] == ["echo", "demo", "2", "2"]
    (bystander,) = {"demo-0", "demo-1", "demo-2"} - set(placement.values())
    proxy = Proxy(release, ns)
    for replica in placement:
        wait_for(lambda replica=replica: proxy.echo_round_trip(bystander, replica, replica), timeout=30,  # type: ignore[misc]
                 what=f"{replica} to answer through {bystander}")


def test_kubectl_caxton_deploys_and_removes_agents_through_the_operator(release: ClusterUnderTest,
                                                                        ns: str, tmp_path: Path) -> None:
    module = tmp_path / "counter.wasm"
    module.write_bytes(build_example_agents()["counter"])
    deployed = plugin(release, "agents", "deploy", str(module), "--id", "counter", "--replicas", "1",
                      "--memory", "8Mi", "-n", ns, "-o", "json")
    assert deployed.returncode == 0, deployed.stderr
    agent = kubectl_json(release, "get", "cxa", "counter", "-n", ns)
    assert agent["spec"]["module"]["sha256"] == hashlib.sha256(module.read_bytes()).hexdigest()
    assert agent["spec"]["limits"]["memory"] == "8Mi" and agent["status"]["readyReplicas"] == 1
    assert json.loads(deployed.stdout)["status"]["placement"][0]["replica"] == "counter-0"
    assert any(a["id"] == "counter-0" for pod in ("demo-0", "demo-1", "demo-2")
               for a in Proxy(release, ns).call(pod, "GET", "/v1/agents"))
    refused = plugin(release, "agents", "deploy", str(module), "--id", "Bad_Name", "-n", ns)
    assert refused.returncode == 1 and "Bad_Name" in refused.stderr
    removed = plugin(release, "agents", "remove", "counter", "-n", ns)
    assert removed.returncode == 0, removed.stderr
    assert not any(a["id"].startswith("counter") for pod in ("demo-0", "demo-1", "demo-2")
                   for a in Proxy(release, ns).call(pod, "GET", "/v1/agents"))
    assert release.kubectl("get", "configmap", "counter-wasm", "-n", ns, check=False).returncode != 0
    gone = plugin(release, "agents", "remove", "counter", "-n", ns)
    assert gone.returncode == 4 and "no CaxtonAgent counter" in gone.stderr


def test_killed_node_is_reported_restarted_and_serves_its_agents(release: ClusterUnderTest, ns: str) -> None:
    placement = {p["replica"]: p["node"] for p in agent_status(release, ns)["placement"]}
    victim = placement["echo-0"]
    restarts_before = kubectl_json(release, "get", "pod", victim, "-n", ns)["status"]["containerStatuses"][0][
        "restartCount"]
    connected = next(c for c in cluster_status(release, ns)["conditions"] if c["type"] == "PartitionDetected")
    assert connected["status"] == "False"
    assert kill_node_process(release, ns, victim) >= 1
    # The operator saw it go: an Event, and the member's last transition in status.
    wait_for(lambda: any(victim in e["message"] for reason in ("MemberSuspect", "MemberFailed")
                         for e in events(release, ns, reason)), timeout=60, what=f"an event for {victim}")
    final = wait_cluster(release, ns, lambda s: s.get("phase") == "Running" and any(
        m["name"] == victim and m["state"] == "alive" and m.get("previousState") in ("suspect", "failed")
        for m in s["members"]), f"{victim} to be back alive after being seen suspect or failed")
    assert alive(final) == ["demo-0", "demo-1", "demo-2"]
    pod = kubectl_json(release, "get", "pod", victim, "-n", ns)
    assert pod["status"]["containerStatuses"][0]["restartCount"] > restarts_before
    assert any(e["message"].startswith("Running -> Degraded") for e in events(release, ns, "PhaseDegraded"))
    wait_for(lambda: any(e["message"].startswith(f"{victim}: ") and e["message"].split(" (")[0].endswith("-> alive")
                         and "unknown" not in e["message"] for e in events(release, ns, "MemberAlive")),
             timeout=30, what=f"a MemberAlive event for {victim} coming back")
    # A crash is not a partition: PartitionDetected never left False (its transition time did not move).
    after = next(c for c in final["conditions"] if c["type"] == "PartitionDetected")
    assert (after["status"], after["lastTransitionTime"]) == ("False", connected["lastTransitionTime"])
    assert not events(release, ns, "Partitioned")
    # Its agent came back from the node's volume, on the same node.
    proxy = Proxy(release, ns)
    other = next(n for n in ("demo-0", "demo-1", "demo-2") if n != victim)
    wait_for(lambda: proxy.echo_round_trip(other, "echo-0", "again"), timeout=60, what="echo-0 to answer again")
    status = wait_for(lambda: (s := agent_status(release, ns)).get("readyReplicas") == 2 and s, timeout=60,
                      what="the CaxtonAgent to be ready again")
    assert {p["replica"]: p["node"] for p in status["placement"]}["echo-0"] == victim


def test_a_partition_is_told_apart_from_a_crash(release: ClusterUnderTest, ns: str,
                                               partition: NetworkPartition) -> None:
    """A member cut off while its pod runs is a partition; the crash before it (the previous
    test) left PartitionDetected False, with its transition time unchanged."""
    if not release.has_process_kubelet:
        pytest.skip("iptables on this machine reaches only pods of the process kubelet")
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in kubectl_json(release, "get", "pods", "-n", ns)["items"]}
    partition.cut([ips["demo-2"]], [ips["demo-0"], ips["demo-1"]])
    cut = wait_cluster(release, ns, lambda s: (s.get("partition") or {}).get("unreachable") == ["demo-2"],
                       "demo-2 to be reported cut off")
    condition = next(c for c in cut["conditions"] if c["type"] == "PartitionDetected")
    assert condition["status"] == "True" and "demo-2" in condition["message"]
    assert cut["phase"] == "Degraded"
    assert events(release, ns, "Partitioned")
    partition.heal()
    wait_cluster(release, ns, lambda s: s.get("phase") == "Running" and not s["partition"]["partitioned"],
                 "the partition to heal")


def node_pods(cluster: ClusterUnderTest, ns: str) -> dict[str, tuple[str, int, str]]:
    """pod -> (uid, restart count, container id) of demo's pods: what a restart or replacement changes."""
    return {p["metadata"]["name"]: (p["metadata"]["uid"], p["status"]["containerStatuses"][0]["restartCount"],
                                    p["status"]["containerStatuses"][0].get("containerID", ""))
            for p in kubectl_json(cluster, "get", "pods", "-n", ns, "-l", "app.kubernetes.io/instance=demo")["items"]}


def config_hash(cluster: ClusterUnderTest, ns: str) -> str:
    sts = kubectl_json(cluster, "get", "statefulset", "demo", "-n", ns)
    return str(sts["spec"]["template"]["metadata"]["annotations"]["caxton.dev/config-hash"])


def test_scaling_out_and_in_keeps_every_agent(release: ClusterUnderTest, ns: str) -> None:
    staying, template = node_pods(release, ns), config_hash(release, ns)
    assert sorted(staying) == ["demo-0", "demo-1", "demo-2"]
    release.kubectl("scale", "cxc", "demo", "-n", ns, "--replicas=5")
    wait_cluster(release, ns, lambda s: s.get("phase") == "Running" and len(alive(s)) == 5,
                 "five alive members")
    assert any(e["message"] == "3 -> 5 nodes" for e in events(release, ns, "ScalingUp"))
    wait_for(lambda: {"demo-3", "demo-4"} <= {e["message"].split(":")[0] for e in events(release, ns, "MemberAlive")
                                               if "unknown -> alive" in e["message"]},
             timeout=30, what="MemberAlive events for the joining nodes")
    config = yaml.safe_load(release.kube.get(f"/api/v1/namespaces/{ns}/configmaps/demo-config")["data"]["config.yaml"])
    assert config["coordination"]["cluster"]["bootstrap_expect"] == 5
    # Seeds and bootstrap_expect changed, but not the pod template: scaling restarts nobody.
    assert config_hash(release, ns) == template
    assert {pod: node_pods(release, ns)[pod] for pod in staying} == staying
    # An agent deployed by hand on a node that is about to go.
    proxy = Proxy(release, ns)
    wasm = build_example_agents()["echo"]
    proxy.call("demo-4", "POST", "/v1/agents", json={"id": "manual", "wasm": base64.b64encode(wasm).decode()})
    release.kubectl("patch", "cxa", "echo", "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":4}}')
    wait_for(lambda: agent_status(release, ns).get("readyReplicas") == 4, timeout=60, what="four echo replicas")

    # `kubectl caxton cluster scale` patches the scale subresource and waits for the members.
    # Moving agents, draining and two nodes leaving: minutes, not seconds, on a loaded machine.
    scaled = plugin(release, "cluster", "scale", "--replicas", "3", "-n", ns, "-o", "json", "--timeout", "240",
                    timeout=270)
    assert scaled.returncode == 0, scaled.stderr
    assert sorted(m["name"] for m in json.loads(scaled.stdout)["status"]["members"]) == ["demo-0", "demo-1", "demo-2"]
    final = wait_cluster(release, ns, lambda s: s.get("phase") == "Running" and alive(s) == [
        "demo-0", "demo-1", "demo-2"] and len(s["members"]) == 3, "three members after scaling in")
    assert final["readyReplicas"] == 3
    assert any("demo-3, demo-4" in e["message"] for e in events(release, ns, "ScalingDown"))
    assert events(release, ns, "AgentsMoved")
    assert node_pods(release, ns) == staying and config_hash(release, ns) == template
    everywhere = {a["id"]: pod for pod in ("demo-0", "demo-1", "demo-2")
                  for a in proxy.call(pod, "GET", "/v1/agents")}
    assert {"manual", "echo-0", "echo-1", "echo-2", "echo-3"} <= set(everywhere)
    status = wait_for(lambda: (s := agent_status(release, ns)).get("readyReplicas") == 4 and s, timeout=60,
                      what="every echo replica running on the remaining nodes")
    assert {p["node"] for p in status["placement"]} <= {"demo-0", "demo-1", "demo-2"}
    for agent in ("manual", "echo-3"):
        wait_for(lambda agent=agent: proxy.echo_round_trip("demo-0", agent, agent), timeout=30,  # type: ignore[misc]
                 what=f"{agent} to answer after the scale-in")
    pvcs = kubectl_json(release, "get", "pvc", "-n", ns)["items"]
    wait_for(lambda: len(kubectl_json(release, "get", "pvc", "-n", ns)["items"]) == 3, timeout=60,
             what=f"the removed nodes' volumes to go (have {len(pvcs)})")


def served_certificate(cluster: ClusterUnderTest, ns: str, pod: str, tmp_path: Path) -> x509.Certificate:
    """The certificate `pod` presents in a new mutual-TLS handshake on its peer port (:7946),
    verified against the cluster CA, with another node's certificate as the client's."""
    data = {k: base64.b64decode(v) for k, v in cluster.kube.get(f"/api/v1/namespaces/{ns}/secrets/demo-tls")[
        "data"].items()}
    client = "demo-1" if pod != "demo-1" else "demo-0"
    for name, content in (("ca.crt", data["ca.crt"]), ("client.crt", data[f"{client}.crt"]),
                          ("client.key", data[f"{client}.key"])):
        (tmp_path / name).write_bytes(content)
    context = client_context(tmp_path / "ca.crt", tmp_path / "client.crt", tmp_path / "client.key")
    ip = kubectl_json(cluster, "get", "pod", pod, "-n", ns)["status"]["podIP"]
    with socket.create_connection((ip, 7946), timeout=10) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def secret_certificate(cluster: ClusterUnderTest, ns: str, pod: str) -> x509.Certificate:
    data = cluster.kube.get(f"/api/v1/namespaces/{ns}/secrets/demo-tls")["data"]
    return x509.load_pem_x509_certificate(base64.b64decode(data[f"{pod}.crt"]))


def test_pause_holds_spec_changes_and_placement_but_certificates_renew(release: ClusterUnderTest, ns: str,
                                                                       tmp_path: Path) -> None:
    # Pod addresses are reachable from here only on the process kubelet's loopback.
    handshakes = release.has_process_kubelet
    first = served_certificate(release, ns, "demo-0", tmp_path) if handshakes else None
    assert first is None or first.serial_number == secret_certificate(release, ns, "demo-0").serial_number
    release.kubectl("annotate", "cxc", "demo", "-n", ns, "caxton.dev/pause-reconciliation=true")
    paused = wait_cluster(release, ns, lambda s: s.get("phase") == "Paused", "the Paused phase")
    condition = next(c for c in paused["conditions"] if c["type"] == "ReconciliationPaused")
    assert condition["status"] == "True" and "certificate renewal continues" in condition["message"]
    before = paused["certificates"]["notAfter"]
    # An agent created while paused is not placed.
    wasm = build_example_agents()["echo"]
    release.apply(yaml.safe_dump({
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonAgent", "metadata": {"name": "late"},
        "spec": {"clusterRef": {"name": "demo"}, "replicas": 1,
                 "module": {"configMapRef": {"name": "echo-wasm", "key": "agent.wasm"},
                            "sha256": hashlib.sha256(wasm).hexdigest()}},
    }), ns)
    waiting = wait_for(lambda: next((c for c in agent_status(release, ns, "late").get("conditions") or []
                                     if c["reason"] == "ClusterPaused"), None), timeout=60,
                       what="the late agent to wait for the paused cluster")
    assert "placement waits" in waiting["message"]
    # Inside the renew-before window at once: while paused, the operator still renews.
    release.kubectl("patch", "cxc", "demo", "-n", ns, "--type=merge", "-p",
                    '{"spec":{"replicas":5,"tls":{"renewBefore":"2159h59m50s"}}}')
    wait_for(lambda: cluster_status(release, ns)["certificates"]["notAfter"] > before, timeout=60,
             what="the certificates to be renewed while paused")
    assert events(release, ns, "CertificatesRenewed")
    # The latest spec, changed again while paused, is what counts when reconciliation resumes.
    release.kubectl("patch", "cxc", "demo", "-n", ns, "--type=merge", "-p",
                    '{"spec":{"replicas":4,"tls":{"renewBefore":"720h"}}}')
    sts = kubectl_json(release, "get", "statefulset", "demo", "-n", ns)
    assert sts["spec"]["replicas"] == 3, "a paused cluster is not scaled"
    assert not any(a["id"] == "late-0" for pod in ("demo-0", "demo-1", "demo-2")
                   for a in Proxy(release, ns).call(pod, "GET", "/v1/agents"))
    # Renewed certificates are loaded live: a new handshake on the peer port presents the renewed one.
    def presents_renewed() -> x509.Certificate | None:
        served = served_certificate(release, ns, "demo-0", tmp_path)
        return served if served.serial_number == secret_certificate(release, ns, "demo-0").serial_number else None

    if first is not None:
        renewed = wait_for(presents_renewed, timeout=90, what="demo-0 to present its renewed certificate")
        assert renewed.serial_number != first.serial_number
        assert renewed.not_valid_after_utc > first.not_valid_after_utc
    assert alive(cluster_status(release, ns)) == ["demo-0", "demo-1", "demo-2"]

    release.kubectl("annotate", "cxc", "demo", "-n", ns, "caxton.dev/pause-reconciliation-")
    generation = kubectl_json(release, "get", "cxc", "demo", "-n", ns)["metadata"]["generation"]
    resumed = wait_cluster(release, ns, lambda s: s.get("phase") == "Running" and len(alive(s)) == 4 and any(
        c["type"] == "ReconciliationPaused" and c["status"] == "False" for c in s["conditions"]),
        "reconciliation to resume with four members")
    assert resumed["observedGeneration"] == generation
    assert kubectl_json(release, "get", "statefulset", "demo", "-n", ns)["spec"]["replicas"] == 4
    wait_for(lambda: agent_status(release, ns, "late").get("readyReplicas") == 1, timeout=60,
             what="the late agent to be placed once the cluster is resumed")
    assert Proxy(release, ns).echo_round_trip("demo-1", "echo-0", "after rotation")
    delete_agent(release, ns, "late")


def test_deleting_the_cluster_removes_everything_it_owned(release: ClusterUnderTest, ns: str) -> None:
    delete_agent(release, ns, "echo")
    assert not any(a["id"].startswith("echo-") for pod in ("demo-0", "demo-1", "demo-2")
                   for a in Proxy(release, ns).call(pod, "GET", "/v1/agents"))
    release.kubectl("delete", "cxc", "demo", "-n", ns, "--wait=true", "--timeout=90s")
    # The finalizer held the CaxtonCluster until its nodes had stopped.
    assert not kubectl_json(release, "get", "pods", "-n", ns, "-l", "app.kubernetes.io/instance=demo")["items"]
    wait_for(lambda: not release.kubectl("get", "statefulsets,configmaps,secrets,services,pdb,pvc", "-n", ns,
                                         "-l", "app.kubernetes.io/instance=demo", "-o", "name").stdout.strip(),
             timeout=90, what="every owned object to be garbage-collected")
