"""End to end: CA, gossip-key and API-token rotations on real pods, under counted load.

One operator release and one 3-node CaxtonCluster for the module; the cases run in order on
it. Every rotation runs under continuous cross-node load sent at-least-once
(tests/support/load.py) and is judged by what the nodes do, not by what a Secret holds:
no message lost, no member ever suspect or failed, the nodes' refused-handshake counters
unchanged, and a fresh handshake to every node's peer port presenting the certificate the
rotation was meant to give it.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from caxton_node import pki
from caxton_node.peers.channel import client_context
from cryptography import x509

from tests.operator.test_upgrade_e2e import diagnose, make_cluster, plugin, pods_of
from tests.support.cluster import ClusterUnderTest, pod_ready, temporary_namespace
from tests.support.load import LoadReport, MessageLoad
from tests.support.operator_release import OPERATOR_NS, kill_pod_process, operator_release
from tests.support.waiting import wait_for

NAME = "sec"
PODS = [f"{NAME}-{i}" for i in range(3)]


@pytest.fixture(scope="module")
def release(crds: ClusterUnderTest) -> Iterator[ClusterUnderTest]:
    if not crds.has_process_kubelet:
        pytest.skip("needs the process kubelet of the local control plane: handshakes go to pod addresses "
                    "and the operator is killed by its process")
    yield from operator_release(crds)


@pytest.fixture(scope="module")
def ns(release: ClusterUnderTest) -> Iterator[str]:
    yield from temporary_namespace(release)


@pytest.fixture(scope="module")
def demo(release: ClusterUnderTest, ns: str) -> ClusterUnderTest:
    make_cluster(release, ns, NAME, 3, echo=3)
    return release


# -- looking at the cluster ----------------------------------------------------------------------------------

def secret(cluster: ClusterUnderTest, ns: str, name: str) -> dict[str, bytes]:
    data = cluster.kube.get(f"/api/v1/namespaces/{ns}/secrets/{name}")["data"]
    return {k: base64.b64decode(v) for k, v in data.items()}


def token(cluster: ClusterUnderTest, ns: str) -> str:
    """The token clients send: the first line (while it rotates the Secret holds two)."""
    return secret(cluster, ns, f"{NAME}-api-token")["token"].decode().split()[0]


def node_api(cluster: ClusterUnderTest, ns: str, pod: str, path: str, *, as_token: str | None = None) -> Any:
    resp = cluster.kube.raw("GET", f"/api/v1/namespaces/{ns}/pods/{pod}:8080/proxy{path}",
                            headers={"X-Caxton-Token": as_token or token(cluster, ns)}, timeout=10)
    assert resp.status_code == 200, f"{pod} {path}: HTTP {resp.status_code} {resp.text[:200]}"
    return resp.json()


def certificates(cluster: ClusterUnderTest, ns: str) -> dict[str, Any]:
    obj = cluster.kube.get(f"/apis/caxton.dev/v1alpha1/namespaces/{ns}/caxtonclusters/{NAME}")
    return dict((obj.get("status") or {}).get("certificates") or {})


def cluster_status(cluster: ClusterUnderTest, ns: str) -> dict[str, Any]:
    obj = cluster.kube.get(f"/apis/caxton.dev/v1alpha1/namespaces/{ns}/caxtonclusters/{NAME}")
    return dict(obj.get("status") or {})


def handshake_failures(cluster: ClusterUnderTest, ns: str) -> dict[str, dict[str, int]]:
    return {pod: node_api(cluster, ns, pod, "/v1/security")["tls"]["handshakeFailures"] for pod in PODS}


def troubled_members(cluster: ClusterUnderTest, ns: str, since: float) -> list[dict[str, Any]]:
    """Every member that any node saw turn suspect or failed after `since` (its own event log)."""
    return [dict(e, observer=pod) for pod in PODS for e in node_api(cluster, ns, pod, "/v1/cluster/events")
            if e.get("member") and e.get("state") in ("suspect", "failed") and e["ts"] > since]


def pod_ip(cluster: ClusterUnderTest, ns: str, pod: str) -> str:
    return str(cluster.kube.get(f"/api/v1/namespaces/{ns}/pods/{pod}")["status"]["podIP"])


def presented(cluster: ClusterUnderTest, ns: str, pod: str, tmp_path: Path) -> x509.Certificate:
    """The certificate `pod` presents in a new mutual-TLS handshake on its peer port, verified
    against the trust bundle of the Secret, with another node's certificate as the client's."""
    data = secret(cluster, ns, f"{NAME}-tls")
    peer = PODS[(PODS.index(pod) + 1) % len(PODS)]
    paths = [tmp_path / f"{pod}-{n}" for n in ("ca.crt", "client.crt", "client.key")]
    for path, content in zip(paths, (data["ca.crt"], data[f"{peer}.crt"], data[f"{peer}.key"]), strict=True):
        path.write_bytes(content)
    context = client_context(*paths)
    with socket.create_connection((pod_ip(cluster, ns, pod), 7946), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def check_presented(cluster: ClusterUnderTest, ns: str, tmp_path: Path, ca: x509.Certificate) -> None:
    """Every node presents exactly the leaf in the Secret, issued by `ca`."""
    data = secret(cluster, ns, f"{NAME}-tls")
    for pod in PODS:
        cert = presented(cluster, ns, pod, tmp_path)
        assert pki.fingerprint(cert) == pki.fingerprint(x509.load_pem_x509_certificate(data[f"{pod}.crt"])), pod
        assert pki.issued_by(cert, ca), f"{pod} presents a certificate {ca.subject.rfc4514_string()} did not issue"


def start_load(cluster: ClusterUnderTest, ns: str) -> MessageLoad:
    def endpoints() -> dict[str, str]:
        return {p["metadata"]["name"]: f"http://{p['status']['podIP']}:8080" for p in pods_of(cluster, ns, NAME)
                if pod_ready(p) and p.get("status", {}).get("podIP") and not p["metadata"].get("deletionTimestamp")}

    # The token is read again from the Secret, as a client of the cluster would: a token rotation
    # must not need the client to be restarted.
    return MessageLoad(endpoints, lambda: token(cluster, ns), [f"{NAME}-echo-{i}" for i in range(3)], rate=20,
                       reply_timeout=5.0).start()


class Judge:
    """What every rotation must leave as it found: no message lost, no member suspected,
    no refused handshake."""

    def __init__(self, cluster: ClusterUnderTest, ns: str) -> None:
        self.cluster, self.ns = cluster, ns
        self.since = time.time()
        self.failures = handshake_failures(cluster, ns)
        self.load = start_load(cluster, ns)

    def verdict(self, what: str) -> LoadReport:
        report = self.load.stop(drain_timeout=180)  # a busy machine: the client itself may be behind
        print(what, json.dumps(report.as_dict()))
        assert report.sent > 0 and report.lost == 0, f"{what}: {report.as_dict()}"
        assert troubled_members(self.cluster, self.ns, self.since) == []
        assert handshake_failures(self.cluster, self.ns) == self.failures, what
        return report


def rotate(cluster: ClusterUnderTest, ns: str, *args: str, timeout: float = 600) -> Any:
    result = plugin(cluster, "security", *args, "-n", ns, "--cluster", NAME, "--timeout", str(timeout), "-o", "json",
                    timeout=timeout + 60)
    if result.returncode != 0:
        print(diagnose(cluster, ns, NAME))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# -- the cases, in order ----------------------------------------------------------------------------------------

def test_ca_rotation_under_load_survives_an_operator_kill(demo: ClusterUnderTest, ns: str, tmp_path: Path) -> None:
    old_data = secret(demo, ns, f"{NAME}-tls")
    old_ca = pki.load_bundle(old_data["ca.crt"])[0]
    before = certificates(demo, ns)
    assert before["phase"] == "Ready" and before["caFingerprint"] == pki.fingerprint(old_ca)
    check_presented(demo, ns, tmp_path, old_ca)
    judge = Judge(demo, ns)

    started = plugin(demo, "security", "rotate-certs", "-n", ns, "--no-wait", "-o", "json")
    assert started.returncode == 0, started.stderr
    # Phase 1 is under way: kill -9 the operator before it moves to phase 2.
    phase = wait_for(lambda: (p := certificates(demo, ns).get("phase")) in ("TrustingBoth", "ReissuingLeaves") and p,
                     timeout=120, what="the CA rotation to start", interval=0.2)
    assert phase == "TrustingBoth"
    operator = demo.kube.get(f"/api/v1/namespaces/{OPERATOR_NS}/pods")["items"][0]
    restarts = operator["status"]["containerStatuses"][0].get("restartCount", 0)
    assert kill_pod_process(operator["status"]["podIP"], b"caxton-operator") >= 1
    wait_for(lambda: demo.kube.get(f"/api/v1/namespaces/{OPERATOR_NS}/pods/{operator['metadata']['name']}")[
        "status"]["containerStatuses"][0].get("restartCount", 0) > restarts, timeout=120,
             what="the kubelet to restart the killed operator")

    done = wait_for(lambda: (c := certificates(demo, ns)).get("phase") == "Ready" and
                    c.get("caGeneration", 1) > before.get("caGeneration", 1) and c, timeout=600,
                    what="the CA rotation to finish after the operator restart", interval=1)
    judge.verdict("CA rotation")
    new_ca = pki.load_bundle(secret(demo, ns, f"{NAME}-ca")["ca.crt"])[0]
    assert done["caFingerprint"] == pki.fingerprint(new_ca) != before["caFingerprint"]
    assert [pki.fingerprint(c) for c in pki.load_bundle(secret(demo, ns, f"{NAME}-tls")["ca.crt"])] == [
        pki.fingerprint(new_ca)]
    for pod in PODS:  # what each node says it loaded: the new CA only
        tls = node_api(demo, ns, pod, "/v1/security")["tls"]
        assert [c["fingerprint"] for c in tls["trusted"]] == [pki.fingerprint(new_ca)]
    check_presented(demo, ns, tmp_path, new_ca)
    reasons = [e["reason"] for e in demo.kube.get(f"/api/v1/namespaces/{ns}/events", fieldSelector=(
        f"involvedObject.kind=CaxtonCluster,involvedObject.name={NAME}"))["items"]]
    # Kopf posts Events in the background: the phase-1 Event may die with the killed operator
    # (its status did not); those after the restart must all be there.
    missing = [r for r in ("CARotationReissuing", "CARotationDroppingOld", "CARotated") if r not in reasons]
    if missing:
        print(diagnose(demo, ns, NAME))
    assert missing == []

    # A client holding only the old CA (and an old node certificate) is refused by every node.
    paths = [tmp_path / n for n in ("old-ca.crt", "old.crt", "old.key")]
    for path, content in zip(paths, (old_data["ca.crt"], old_data[f"{PODS[0]}.crt"], old_data[f"{PODS[0]}.key"]),
                             strict=True):
        path.write_bytes(content)
    stale = client_context(*paths)
    for pod in PODS:
        with pytest.raises(ssl.SSLError), socket.create_connection((pod_ip(demo, ns, pod), 7946), timeout=10) as raw, \
                stale.wrap_socket(raw):
            pass


def test_gossip_key_rotation_under_load(demo: ClusterUnderTest, ns: str) -> None:
    before = node_api(demo, ns, PODS[0], "/v1/security")["gossip"]
    judge = Judge(demo, ns)
    result = rotate(demo, ns, "rotate-gossip-key")
    judge.verdict("gossip key rotation")
    primary = result["gossipKey"]["primary"]
    assert primary != before["primary"]
    for pod in PODS:
        assert node_api(demo, ns, pod, "/v1/security")["gossip"] == {"primary": primary, "keyIds": [primary]}
    assert len(secret(demo, ns, f"{NAME}-gossip")["key"].split()) == 1
    for pod in PODS:  # gossip still works on the new key alone: nobody drops packets as undecryptable
        assert node_api(demo, ns, pod, "/v1/cluster/status")["droppedGossipPackets"] == 0


def test_token_rotation_under_load(demo: ClusterUnderTest, ns: str) -> None:
    old = token(demo, ns)
    judge = Judge(demo, ns)
    rotate(demo, ns, "rotate-token")
    judge.verdict("API token rotation")
    new = token(demo, ns)
    assert new != old and len(secret(demo, ns, f"{NAME}-api-token")["token"].split()) == 1
    for pod in PODS:
        refused = demo.kube.raw("GET", f"/api/v1/namespaces/{ns}/pods/{pod}:8080/proxy/v1/agents",
                                headers={"X-Caxton-Token": old}, timeout=10)
        assert refused.status_code == 401, pod
        assert [t["primary"] for t in node_api(demo, ns, pod, "/v1/security", as_token=new)["api"]["tokens"]] == [True]
    # The plugin and the operator work with the new token.
    members = plugin(demo, "cluster", "members", "-n", ns, "--cluster", NAME, "-o", "json")
    assert members.returncode == 0 and len(json.loads(members.stdout)) == 3, members.stderr
    wait_for(lambda: cluster_status(demo, ns).get("phase") == "Running", timeout=60, what="status to stay Running")


def test_a_user_ca_rotates_in_and_cert_status_warns_of_its_short_life(demo: ClusterUnderTest, ns: str,
                                                                      tmp_path: Path) -> None:
    import datetime as dt

    user = pki.new_ca("user-ca", valid_for=dt.timedelta(hours=2))
    user.write(tmp_path / "user.crt", tmp_path / "user.key")
    judge = Judge(demo, ns)
    result = rotate(demo, ns, "rotate-certs", "--ca-cert", str(tmp_path / "user.crt"), "--ca-key",
                    str(tmp_path / "user.key"))
    judge.verdict("user CA rotation")
    assert result["certificates"]["caFingerprint"] == pki.fingerprint(user.cert)
    check_presented(demo, ns, tmp_path, user.cert)

    # Node certificates end with the CA, two hours from now: inside renewBefore (720h) -> WARNING.
    shown = plugin(demo, "security", "cert-status", "-n", ns, "--cluster", NAME)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["NODE-ID", "EXPIRES-IN", "STATUS"]
    assert {line.split()[0]: line.split()[-1] for line in lines[1:4]} == dict.fromkeys(PODS, "WARNING")
    assert lines[4].startswith(f"CA {pki.fingerprint(user.cert)[:12]}") and lines[4].endswith("WARNING")
    as_json = json.loads(plugin(demo, "security", "cert-status", "-n", ns, "--cluster", NAME, "-o", "json").stdout)
    assert [n["fingerprint"] for n in as_json["nodes"]] == [
        pki.fingerprint(x509.load_pem_x509_certificate(secret(demo, ns, f"{NAME}-tls")[f"{p}.crt"])) for p in PODS]
    relaxed = plugin(demo, "security", "cert-status", "-n", ns, "--cluster", NAME, "--renew-before", "30m")
    assert relaxed.returncode == 0 and relaxed.stdout.count("OK") == 4, relaxed.stdout


def test_a_ca_with_a_mismatched_key_is_refused_and_changes_nothing(demo: ClusterUnderTest, ns: str,
                                                                   tmp_path: Path) -> None:
    good, other = pki.new_ca("good"), pki.new_ca("other")
    (tmp_path / "ca.crt").write_bytes(good.cert_pem)
    (tmp_path / "wrong.key").write_bytes(other.key_pem)
    serving = certificates(demo, ns)["caFingerprint"]
    refused = plugin(demo, "security", "rotate-certs", "-n", ns, "--cluster", NAME, "--ca-cert",
                     str(tmp_path / "ca.crt"), "--ca-key", str(tmp_path / "wrong.key"), "--timeout", "120")
    assert refused.returncode == 1, refused.stderr
    assert "private key does not match" in refused.stderr
    status = cluster_status(demo, ns)
    assert status["certificates"]["phase"] == "Refused"
    condition = next(c for c in status["conditions"] if c["type"] == "CertificatesReady")
    assert condition["status"] == "False" and condition["reason"] == "CARefused"
    assert "private key does not match" in condition["message"]
    assert status["certificates"]["caFingerprint"] == serving  # the cluster keeps its CA
    for pod in PODS:
        assert [c["fingerprint"] for c in node_api(demo, ns, pod, "/v1/security")["tls"]["trusted"]] == [serving]
