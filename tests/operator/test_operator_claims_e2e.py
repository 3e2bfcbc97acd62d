"""End to end, the README's promises about an operator confined to some namespaces: the
chart's values schema, `watchNamespaces` through RoleBindings, the documented RBAC,
`CertificatesReady=False` naming a missing CA Secret, agent modules from a Secret and from an
https:// URL (signed by a CA given to the chart), a spec change that touches nothing else, the
operator's /healthz and metrics, and a new cluster with an old one's name that never meets the
old pods. (Scaling without restarts is checked in test_operator_e2e.py, which scales anyway.)

One release (`watchNamespaces: [<watched>, <other>]`) serves the whole module, and every
CaxtonCluster and CaxtonAgent is applied before it starts, so they come up together; the
same-name case runs in a thread beside the others from the start.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import os
import re
import ssl
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from caxton_kube import KubeError
from caxton_node import pki

from tests.operator.test_operator_e2e import CHART, Proxy, alive, helm, kubectl_json
from tests.support import addresses
from tests.support.agents import build_example_agents
from tests.support.cluster import ClusterUnderTest, temporary_namespace
from tests.support.operator_release import operator_leader
from tests.support.waiting import wait_for

RELEASE, OPERATOR_NS = "scoped-caxton-operator", "caxton-scoped"
OPERATOR_SA = f"system:serviceaccount:{OPERATOR_NS}:{RELEASE}"
DEMO = ["demo-0", "demo-1"]  # the nodes of the watched namespace's cluster
FAST_GOSSIP = {"interval": "100ms", "probeInterval": "500ms", "probeTimeout": "200ms"}


class ModuleServer:
    """Serves agent modules over HTTPS on a loopback address, counting the requests per path."""

    def __init__(self, address: str, ca: pki.KeyPair, directory: Path, files: dict[str, bytes]) -> None:
        self.requests: dict[str, int] = {}
        pair = pki.issue(ca, "modules", ip_addresses=(address,), client=False)
        (directory / "server.crt").write_bytes(pair.cert_pem + ca.cert_pem)
        (directory / "server.key").write_bytes(pair.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "server.crt", directory / "server.key")
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests[self.path] = outer.requests.get(self.path, 0) + 1
                body = files.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((address, 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://{address}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Scoped:
    cluster: ClusterUnderTest
    watched: str  # demo, and the agents
    other: str  # reborn and nocert: also watched
    unwatched: str  # ignored: not watched
    wasm: bytes
    servers: list[ModuleServer] = field(default_factory=list)  # trusted (its CA given to the chart), untrusted
    reborn: Future[dict[str, Any]] = field(default_factory=Future)


def _cxc(name: str, replicas: int, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonCluster", "metadata": {"name": name},
            "spec": {"replicas": replicas, "version": "1.2.0", "storage": {"size": "64Mi"}, "gossip": FAST_GOSSIP,
                     **spec}}


def _cxa(name: str, module: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonAgent", "metadata": {"name": name},
            "spec": {"clusterRef": {"name": "demo"}, "replicas": 1, "module": module}}


def cluster_status(cluster: ClusterUnderTest, ns: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = (cluster.kube.get_or_none(
        f"/apis/caxton.dev/v1alpha1/namespaces/{ns}/caxtonclusters/{name}") or {}).get("status") or {}
    return status


def dump(cluster: ClusterUnderTest, ns: str) -> None:
    """What a failed wait needs to be understood: the namespace's pods and events, the operator's log."""
    print(cluster.kubectl("get", "pods,statefulsets", "-n", ns, "-o", "wide", check=False).stdout)
    print(cluster.kubectl("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False).stdout[-6000:])
    for pod in kubectl_json(cluster, "get", "pods", "-n", OPERATOR_NS)["items"]:
        print(cluster.kubectl("logs", "-n", OPERATOR_NS, pod["metadata"]["name"], "--tail=100", check=False).stdout)


def wait_status(cluster: ClusterUnderTest, ns: str, name: str, check: Any, what: str,
                timeout: float = 240) -> dict[str, Any]:
    try:
        result: dict[str, Any] = wait_for(lambda: (s := cluster_status(cluster, ns, name)) and check(s) and s,
                                          timeout=timeout, what=what, interval=0.5)
    except AssertionError:
        dump(cluster, ns)
        raise
    return result


def agents_on(cluster: ClusterUnderTest, ns: str, pods: list[str]) -> dict[str, str]:
    """agent id -> node, once every one of `pods` answers."""
    proxy = Proxy(cluster, ns)

    def ask() -> dict[str, str] | None:
        found = {}
        for pod in pods:
            resp = cluster.kube.raw("GET", f"/api/v1/namespaces/{ns}/pods/{pod}:8080/proxy/v1/agents",
                                    headers=proxy.headers)
            if resp.status_code != 200:
                return None
            found.update({a["id"]: pod for a in resp.json()})
        return found

    try:
        return wait_for(ask, timeout=60, what=f"{', '.join(pods)} to answer")
    except AssertionError:
        dump(cluster, ns)
        raise


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next((c for c in status.get("conditions") or [] if c["type"] == kind), {})
    return found


def node_pods(cluster: ClusterUnderTest, ns: str, name: str) -> dict[str, dict[str, Any]]:
    """name -> (uid, restart count, container id) of a CaxtonCluster's pods."""
    pods = kubectl_json(cluster, "get", "pods", "-n", ns, "-l", f"app.kubernetes.io/instance={name}")["items"]
    return {p["metadata"]["name"]: {"uid": p["metadata"]["uid"],
                                    "restarts": [c["restartCount"] for c in p["status"].get("containerStatuses") or []],
                                    "containers": [c.get("containerID") for c in
                                                   p["status"].get("containerStatuses") or []]} for p in pods}


def volumes(cluster: ClusterUnderTest, ns: str, name: str) -> dict[str, str]:
    """claim name -> uid of a CaxtonCluster's node volumes."""
    claims = kubectl_json(cluster, "get", "pvc", "-n", ns, "-l", f"app.kubernetes.io/instance={name}")["items"]
    return {c["metadata"]["name"]: c["metadata"]["uid"] for c in claims}


def _reborn(cluster: ClusterUnderTest, ns: str) -> dict[str, Any]:
    """Deletes the Running cluster `reborn` and creates one with the same name at the first moment
    the API server allows; returns what was seen (run in a thread beside the other tests)."""
    first = wait_status(cluster, ns, "reborn", lambda s: s.get("phase") == "Running", "reborn to be Running")
    old_pods, old_volumes = node_pods(cluster, ns, "reborn"), volumes(cluster, ns, "reborn")
    old_key = cluster.kube.get(f"/api/v1/namespaces/{ns}/secrets/reborn-gossip")["data"]["key"]
    cluster.kubectl("delete", "cxc", "reborn", "-n", ns, "--wait=false")
    path = f"/apis/caxton.dev/v1alpha1/namespaces/{ns}/caxtonclusters"

    def create() -> bool:
        try:
            cluster.kube.create(path, _cxc("reborn", 1))
        except KubeError as err:
            if err.status == 409:  # the old one still exists: its finalizer is stopping its nodes
                return False
            raise
        return True

    wait_for(create, timeout=120, what="the old reborn to be gone so a new one can be created", interval=0.1)
    # The moment the name is free again, no pod of the old cluster is left.
    at_create = node_pods(cluster, ns, "reborn")
    second = wait_status(cluster, ns, "reborn", lambda s: s.get("phase") == "Running", "the new reborn Running")
    owners = {name: [ref["uid"] for ref in cluster.kube.get(f"/api/v1/namespaces/{ns}/secrets/{name}")["metadata"][
        "ownerReferences"]] for name in ("reborn-ca", "reborn-tls", "reborn-gossip", "reborn-api-token")}
    return {"first": first, "old_pods": old_pods, "old_key": old_key, "at_create": at_create, "second": second,
            "new_pods": node_pods(cluster, ns, "reborn"), "old_volumes": old_volumes,
            "new_volumes": volumes(cluster, ns, "reborn"), "owners": owners,
            "uid": kubectl_json(cluster, "get", "cxc", "reborn", "-n", ns)["metadata"]["uid"],
            "new_key": cluster.kube.get(f"/api/v1/namespaces/{ns}/secrets/reborn-gossip")["data"]["key"]}


@pytest.fixture(scope="module")
def scoped(crds: ClusterUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scoped]:
    if not crds.has_process_kubelet and not os.environ.get("CAXTON_TEST_IMAGES"):
        pytest.skip("the caxton images must be loadable by this cluster's nodes: build them "
                    "(images/Containerfile), load them (kind load docker-image) and set CAXTON_TEST_IMAGES=1")
    c = crds
    tmp = tmp_path_factory.mktemp("scoped")
    wasm = build_example_agents()["echo"]
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(max_workers=1) as background:
        watched, other, unwatched = (stack.enter_context(contextlib.contextmanager(temporary_namespace)(c))
                                     for _ in range(3))
        trusted_ca, untrusted_ca = pki.new_ca("caxton-test-modules"), pki.new_ca("caxton-test-unknown")
        scoped = Scoped(c, watched, other, unwatched, wasm)
        sha = hashlib.sha256(wasm).hexdigest()
        c.kube.apply(f"/api/v1/namespaces/{watched}/secrets/echo-module", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "echo-module", "namespace": watched},
            "data": {"agent.wasm": base64.b64encode(wasm).decode()}}, manager="tests")
        resources = [_cxc("demo", 2), _cxa("from-secret", {"secretRef": {"name": "echo-module", "key": "agent.wasm"},
                                                           "sha256": sha})]
        if c.has_process_kubelet:  # pods of other clusters cannot reach this machine's loopback
            for i, ca in enumerate((trusted_ca, untrusted_ca)):
                (tmp / str(i)).mkdir()
                server = ModuleServer(f"{addresses.test_network()}.77.{i + 1}", ca, tmp / str(i), {"echo.wasm": wasm})
                stack.callback(server.close)
                scoped.servers.append(server)
            resources += [_cxa("from-url", {"url": f"{scoped.servers[0].url}/echo.wasm", "sha256": sha}),
                          _cxa("untrusted-url", {"url": f"{scoped.servers[1].url}/echo.wasm", "sha256": sha})]
        c.apply(yaml.safe_dump_all(resources), watched)
        c.apply(yaml.safe_dump_all([_cxc("reborn", 1), _cxc("nocert", 1, tls={"caSecretName": "missing-ca"})]), other)
        c.apply(yaml.safe_dump(_cxc("ignored", 1)), unwatched)
        (tmp / "ca.pem").write_bytes(trusted_ca.cert_pem)
        helm(c, "install", RELEASE, str(CHART), "-n", OPERATOR_NS, "--create-namespace", "--wait", "--timeout", "180s",
             "--set", f"watchNamespaces={{{watched},{other}}}", "--set-file", f"moduleCA={tmp / 'ca.pem'}")
        try:
            scoped.reborn = background.submit(_reborn, c, other)
            yield scoped
        finally:
            # The finalizers need the operator: remove the clusters while it still runs.
            for ns in (watched, other):
                c.kubectl("delete", "cxa,cxc", "--all", "-n", ns, "--wait=false", check=False)
            for ns in (watched, other):
                c.kubectl("wait", "--for=delete", "cxa,cxc", "--all", "-n", ns, "--timeout=120s", check=False)
            c.kubectl("delete", "cxc", "--all", "-n", unwatched, "--wait=false", check=False)
            subprocess.run([c.helm_path, f"--kubeconfig={c.kubeconfig}", "uninstall", RELEASE, "-n", OPERATOR_NS,
                            "--wait", "--timeout", "120s"], capture_output=True, timeout=180)
            c.kube.delete(f"/api/v1/namespaces/{OPERATOR_NS}")
            wait_for(lambda: c.kube.get_or_none(f"/api/v1/namespaces/{OPERATOR_NS}") is None, timeout=120,
                     what=f"namespace {OPERATOR_NS} to be gone")


# -- the chart -----------------------------------------------------------------------------------------

def test_values_schema_rejects_unknown_and_mistyped_values(scoped: Scoped) -> None:
    c = scoped.cluster
    for args, message in (
        (["--set", "replicas=2"], "additional properties 'replicas' not allowed"),
        (["--set", "image.tagg=1.0"], "at '/image': additional properties 'tagg' not allowed"),
        (["--set", "ports.health=eighty"], "at '/ports/health': got string, want integer"),
        (["--set", "watchNamespaces={Not_A_Namespace}"], "/watchNamespaces/0"),
    ):
        for verb in (["template", "x"], ["install", "refused", "-n", scoped.unwatched]):
            result = subprocess.run([c.helm_path, f"--kubeconfig={c.kubeconfig}", *verb, str(CHART), *args],
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode != 0 and message in result.stderr, (verb, args, result.stderr)
            assert "values don't meet the specifications of the schema" in result.stderr
    releases = helm(c, "list", "-A", "-q").stdout.split()
    assert "refused" not in releases and RELEASE in releases


def test_watch_namespaces_confines_the_operator_through_role_bindings(scoped: Scoped) -> None:
    c = scoped.cluster
    for ns in (scoped.watched, scoped.other):
        binding = kubectl_json(c, "get", "rolebinding", RELEASE, "-n", ns)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": RELEASE}
    cluster_bindings = [b["metadata"]["name"] for b in kubectl_json(c, "get", "clusterrolebindings")["items"]
                        if any(s.get("name") == RELEASE and s.get("namespace") == OPERATOR_NS
                               for s in b.get("subjects") or [])]
    assert cluster_bindings == [f"{RELEASE}-discovery"]

    def can(verb: str, resource: str, ns: str) -> bool:
        return c.kubectl("auth", "can-i", verb, resource, f"--as={OPERATOR_SA}", "-n", ns,
                         check=False).stdout.strip() == "yes"

    for ns in (scoped.watched, scoped.other):
        assert can("patch", "caxtonclusters.caxton.dev", ns) and can("create", "secrets", ns)
    for ns in (scoped.unwatched, "default"):
        assert not can("get", "caxtonclusters.caxton.dev", ns) and not can("get", "secrets", ns)

    # It acts in the watched namespaces, and never touches the CaxtonCluster in the other one.
    wait_status(c, scoped.watched, "demo", lambda s: s.get("phase") in ("Provisioning", "Running"),
                "demo (watched) to have a phase")
    wait_status(c, scoped.other, "nocert", lambda s: condition(s, "CertificatesReady"),
                "nocert (watched) to have conditions")
    ignored = kubectl_json(c, "get", "cxc", "ignored", "-n", scoped.unwatched)
    assert "caxton.dev/operator" not in (ignored["metadata"].get("finalizers") or [])
    assert not ignored.get("status")
    assert c.kubectl("get", "statefulsets,secrets,configmaps", "-n", scoped.unwatched, "-l",
                     "app.kubernetes.io/instance=ignored", "-o", "name").stdout.strip() == ""
    args = kubectl_json(c, "get", "deployment", RELEASE, "-n", OPERATOR_NS)["spec"]["template"]["spec"][
        "containers"][0]["args"]
    assert f"--namespace={scoped.watched}" in args and f"--namespace={scoped.other}" in args


CAN_I_ROW = re.compile(r"^(\S+)\s+\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$")


def _permissions(cluster: ClusterUnderTest, ns: str) -> dict[str, set[str]]:
    """`kubectl auth can-i --list` for the operator: resource -> verbs."""
    out = cluster.kubectl("auth", "can-i", "--list", f"--as={OPERATOR_SA}", "-n", ns).stdout
    rules: dict[str, set[str]] = {}
    for line in out.splitlines()[1:]:
        match = CAN_I_ROW.match(line)
        if match:
            rules.setdefault(match.group(1), set()).update(match.group(4).split())
    return rules


def test_operator_permissions_are_the_documented_ones(scoped: Scoped) -> None:
    rules = _permissions(scoped.cluster, scoped.watched)
    # It can delete a StatefulSet (its finalizer) and a pod (one crash-looping on a rolled-back version, which
    # the StatefulSet controller does not replace); DELETE through the pod proxy removes agents from nodes.
    # A PVC: `cluster remove --node` wipes a drained middle node's volume so it rejoins fresh.
    assert {r for r, verbs in rules.items() if "delete" in verbs or "*" in verbs} == {
        "statefulsets.apps", "pods", "pods/proxy", "persistentvolumeclaims"}
    assert not any("*" in verbs or "update" in verbs or "deletecollection" in verbs for verbs in rules.values())
    assert rules["pods"] == {"get", "list", "create", "delete"}  # create: a pvc:// backup's volume pod
    assert rules["pods/proxy"] == {"get", "create", "delete"}
    for resource in ("configmaps", "secrets", "services", "poddisruptionbudgets.policy"):
        assert rules[resource] == {"get", "create", "patch"}, resource
    assert rules["statefulsets.apps"] == {"get", "create", "patch", "delete"}
    assert rules["events"] == {"create"}
    for kind in ("caxtonclusters", "caxtonagents", "caxtonbackups"):
        assert rules[f"{kind}.caxton.dev"] == {"get", "list", "watch", "patch"}
    # It creates a CaxtonUpgrade when someone edits cxc.spec.version, so that edit goes through the roller.
    assert rules["caxtonupgrades.caxton.dev"] == {"get", "list", "watch", "patch", "create"}
    for kind in ("caxtonclusters", "caxtonagents", "caxtonupgrades", "caxtonbackups"):
        assert rules[f"{kind}.caxton.dev/status"] == {"get", "patch"}
    assert rules["customresourcedefinitions.apiextensions.k8s.io"] == {"list", "watch"}
    assert rules["namespaces"] == {"list", "watch"}
    assert "nodes" not in rules and rules["persistentvolumeclaims"] == {"get", "delete"}
    # Outside its namespaces only Kopf's cluster-wide reads remain.
    outside = _permissions(scoped.cluster, scoped.unwatched)
    assert not {"pods", "secrets", "statefulsets.apps", "caxtonclusters.caxton.dev"} & set(outside)


# -- status --------------------------------------------------------------------------------------------

def test_a_missing_ca_secret_is_named_in_certificates_ready(scoped: Scoped) -> None:
    c, ns = scoped.cluster, scoped.other
    status = wait_status(c, ns, "nocert", lambda s: condition(s, "CertificatesReady").get("status") == "False",
                         "CertificatesReady=False on nocert")
    missing = condition(status, "CertificatesReady")
    assert missing["reason"] == "CertificateAuthorityMissing"
    assert "Secret missing-ca not found" in missing["message"] and ns in missing["message"]
    assert c.kube.get_or_none(f"/apis/apps/v1/namespaces/{ns}/statefulsets/nocert") is None

    ca = pki.new_ca("caxton-test-user-ca")
    c.kube.create(f"/api/v1/namespaces/{ns}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "missing-ca"},
        "data": {"tls.crt": base64.b64encode(ca.cert_pem).decode(), "tls.key": base64.b64encode(ca.key_pem).decode()}})
    issued = wait_status(c, ns, "nocert", lambda s: condition(s, "CertificatesReady").get("status") == "True",
                         "CertificatesReady=True once the Secret exists")
    assert condition(issued, "CertificatesReady")["reason"] == "Issued"
    tls = c.kube.get(f"/api/v1/namespaces/{ns}/secrets/nocert-tls")["data"]
    assert base64.b64decode(tls["ca.crt"]) == ca.cert_pem
    c.kubectl("delete", "cxc", "nocert", "-n", ns, "--wait=false")


# -- agents -------------------------------------------------------------------------------------------

def _agent_status(c: ClusterUnderTest, ns: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = kubectl_json(c, "get", "cxa", name, "-n", ns).get("status") or {}
    return status


def _placed(c: ClusterUnderTest, ns: str, name: str) -> str:
    """The node that runs replica 0 of CaxtonAgent `name`, once it does; it answers from another node."""
    status = wait_for(lambda: (s := _agent_status(c, ns, name)).get("readyReplicas") == 1 and s,
                      timeout=240, what=f"{name} to run", interval=0.5)
    node = str(status["placement"][0]["node"])
    assert agents_on(c, ns, DEMO).get(f"{name}-0") == node
    via = next(p for p in DEMO if p != node)
    proxy = Proxy(c, ns)
    wait_for(lambda: proxy.echo_round_trip(via, f"{name}-0", name), timeout=30,
             what=f"{name}-0 to answer through {via}")
    return node


def test_agent_module_from_a_secret(scoped: Scoped) -> None:
    _placed(scoped.cluster, scoped.watched, "from-secret")


def test_agent_module_from_an_https_url_signed_by_the_ca_given_to_the_chart(scoped: Scoped) -> None:
    if not scoped.servers:
        pytest.skip("the module server listens on this machine's loopback, which only the process kubelet's "
                    "pods reach")
    c, ns = scoped.cluster, scoped.watched
    trusted, untrusted = scoped.servers
    _placed(c, ns, "from-url")
    assert trusted.requests.get("/echo.wasm", 0) >= 1
    # A server whose CA the operator was not given is refused, and nothing is deployed.
    refused = wait_for(lambda: next((cond for cond in _agent_status(c, ns, "untrusted-url").get("conditions") or []
                                     if cond["reason"] == "ModuleUnavailable"), None), timeout=60,
                       what="the untrusted module URL to be refused")
    assert "CERTIFICATE_VERIFY_FAILED" in refused["message"] and untrusted.url in refused["message"]
    assert "untrusted-url-0" not in agents_on(c, ns, DEMO)


# -- scaling and spec changes ---------------------------------------------------------------------------

OWNED = ("statefulsets/demo", "configmaps/demo-config", "services/demo", "services/demo-peers",
         "poddisruptionbudgets/demo", "secrets/demo-ca", "secrets/demo-tls", "secrets/demo-gossip",
         "secrets/demo-api-token")


def _versions(c: ClusterUnderTest, ns: str) -> dict[str, str]:
    return {name: kubectl_json(c, "get", name, "-n", ns)["metadata"]["resourceVersion"] for name in OWNED}


def test_a_spec_change_applies_only_what_changed(scoped: Scoped) -> None:
    c, ns = scoped.cluster, scoped.watched
    wait_status(c, ns, "demo", lambda s: s.get("phase") == "Running", "demo Running")
    versions, pods = _versions(c, ns), node_pods(c, ns, "demo")
    c.kubectl("patch", "cxc", "demo", "-n", ns, "--type=merge", "-p", '{"spec":{"rebalance":{"replaceAfter":"45s"}}}')
    generation = kubectl_json(c, "get", "cxc", "demo", "-n", ns)["metadata"]["generation"]
    wait_status(c, ns, "demo", lambda s: s.get("observedGeneration") == generation,
                "the operator to reconcile the new generation")
    # rebalance.replaceAfter is the operator's own setting: no object of the cluster changes.
    assert _versions(c, ns) == versions
    assert node_pods(c, ns, "demo") == pods


# -- the operator itself -------------------------------------------------------------------------------

def _metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            have = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if "{" in line else {}
            if all(have.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    return None


def test_operator_serves_healthz_and_metrics(scoped: Scoped) -> None:
    c = scoped.cluster
    # The acting replica's (the standby's gauges stay empty: tests/operator/test_operator_ha_e2e.py).
    leader = wait_for(lambda: operator_leader(c, OPERATOR_NS, RELEASE), timeout=60, what="the operator's leader")
    base = f"/api/v1/namespaces/{OPERATOR_NS}/pods/{leader}"
    health = c.kube.raw("GET", f"{base}:8080/proxy/healthz")
    assert health.status_code == 200, health.text

    def scrape() -> str:
        resp = c.kube.raw("GET", f"{base}:9090/proxy/metrics")
        assert resp.status_code == 200, resp.text
        return resp.text

    ns = scoped.watched
    def demo_counted() -> str | None:
        text = scrape()
        members = _metric(text, "caxton_operator_cluster_members_alive", namespace=ns, cluster="demo")
        return text if members == len(DEMO) else None

    text = wait_for(demo_counted, timeout=60, what="the members gauge of demo")
    assert _metric(text, "caxton_operator_agent_replicas_ready", namespace=ns, agent="from-secret") == 1
    for kind in ("CaxtonCluster", "CaxtonAgent"):
        assert (_metric(text, "caxton_operator_reconcile_duration_seconds_count", kind=kind) or 0) > 0, kind
    # nocert's reconciliations raised while its CA Secret was missing.
    assert (_metric(text, "caxton_operator_reconcile_errors_total", kind="CaxtonCluster") or 0) >= 1


# -- names ---------------------------------------------------------------------------------------------

def test_a_new_cluster_with_the_same_name_never_meets_old_pods(scoped: Scoped) -> None:
    seen = scoped.reborn.result(timeout=400)
    old_uids = {p["uid"] for p in seen["old_pods"].values()}
    assert set(seen["old_pods"]) == {"reborn-0"}
    assert not old_uids & {p["uid"] for p in seen["at_create"].values()}
    assert set(seen["new_pods"]) == {"reborn-0"} and not old_uids & {p["uid"] for p in seen["new_pods"].values()}
    assert alive(seen["second"]) == ["reborn-0"] and len(seen["second"]["members"]) == 1
    # Nor their volumes or keys: the new cluster starts from nothing it did not make itself.
    assert set(seen["old_volumes"]) == set(seen["new_volumes"]) == {"data-reborn-0"}
    assert seen["old_volumes"] != seen["new_volumes"]
    assert seen["new_key"] != seen["old_key"]
    assert all(owners == [seen["uid"]] for owners in seen["owners"].values()), seen["owners"]
