"""What a node trusts and presents (GET /v1/security and the metrics), by fingerprint and id
only: the CA bundle, the served leaf, the gossip key ids and the accepted API token ids. A
refused TLS handshake is counted, and the accepted tokens rotate live."""

from __future__ import annotations

import hashlib
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from caxton_node import pki
from caxton_node.peers.channel import client_context
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from tests.support.nodes import NodeFactory, NodeProcess, cluster_node, gossip_key
from tests.support.waiting import wait_for


def facts(node: NodeProcess) -> dict:
    with node.client() as client:
        response = client.get("/v1/security")
    assert response.status_code == 200, response.text
    return response.json()


def samples(node: NodeProcess, name: str) -> list[tuple[dict[str, str], float]]:
    text = httpx.get(node.metrics_url, timeout=10).text
    return [(s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name]


@pytest.fixture
def node(node_factory: NodeFactory, tmp_path: Path) -> NodeProcess:
    return cluster_node(node_factory, gossip_key(tmp_path / "keys"), [], 1, ca_dir=tmp_path / "ca")


def test_the_node_reports_fingerprints_and_ids_never_material(node: NodeProcess, tmp_path: Path) -> None:
    ca = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.crt").read_bytes())
    leaf = x509.load_pem_x509_certificate((tmp_path / "ca" / f"{node.node_id}.crt").read_bytes())
    key = (tmp_path / "keys" / "gossip.key").read_text().strip()
    token = node.token_file.read_text().strip()
    with node.client() as client:
        raw = client.get("/v1/security").text
    for secret in (key, token, (tmp_path / "ca" / f"{node.node_id}.key").read_text()):
        assert secret not in raw
    found = facts(node)
    assert found["node"] == node.node_id
    assert [c["fingerprint"] for c in found["tls"]["trusted"]] == [pki.fingerprint(ca)]
    assert found["tls"]["leaf"]["fingerprint"] == pki.fingerprint(leaf)
    assert found["tls"]["leaf"]["notAfter"] == f"{leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    assert found["tls"]["handshakeFailures"] == {"server": 0, "client": 0}
    key_id = hashlib.sha256(__import__("base64").b64decode(key)).digest()[:4].hex()
    assert found["gossip"] == {"primary": key_id, "keyIds": [key_id]}
    assert [(t["id"], t["primary"]) for t in found["api"]["tokens"]] == [
        (hashlib.sha256(token.encode()).hexdigest()[:12], True)]
    assert found["api"]["tokens"][0]["lastUsedSecondsAgo"] is not None  # this very call used it

    infos = {(labels["role"], labels["fingerprint"]) for labels, value in samples(node, "caxton_tls_certificate_info")
             if value == 1}
    assert infos == {("ca", pki.fingerprint(ca)), ("leaf", pki.fingerprint(leaf))}
    assert samples(node, "caxton_tls_certificate_expiry_timestamp_seconds") == [
        ({}, leaf.not_valid_after_utc.timestamp())]
    assert [labels for labels, _ in samples(node, "caxton_gossip_keyring_key_info")] == [
        {"key_id": key_id, "primary": "true"}]
    assert [labels["token_id"] for labels, _ in samples(node, "caxton_api_tokens_accepted_info")] == [
        found["api"]["tokens"][0]["id"]]


def test_a_refused_handshake_is_counted(node: NodeProcess, tmp_path: Path) -> None:
    """A client whose certificate another CA signed is refused on the peer port, and counted."""
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    other = pki.new_ca("stranger-ca")
    other.write(stranger / "ca.crt", stranger / "ca.key")
    pki.issue(other, "intruder").write(stranger / "intruder.crt", stranger / "intruder.key")
    context = client_context(stranger / "ca.crt", stranger / "intruder.crt", stranger / "intruder.key")
    with pytest.raises(ssl.SSLError), socket.create_connection((node.address, 7946), timeout=10) as raw, \
            context.wrap_socket(raw):
        pass  # we do not trust its CA either: our own side refuses first
    wait_for(lambda: facts(node)["tls"]["handshakeFailures"]["server"] == 1, timeout=20,
             what="the node to count the refused handshake")
    assert ({"side": "server"}, 1.0) in samples(node, "caxton_peer_tls_handshake_failures_total")


def test_api_tokens_rotate_live_with_overlap(node: NodeProcess) -> None:
    old = node.token_file.read_text().strip()
    new = "n" * 8 + old[8:][::-1] + "rotated"
    ids = {t: hashlib.sha256(t.encode()).hexdigest()[:12] for t in (old, new)}

    def status_with(token: str) -> int:
        return httpx.get(f"{node.api}/v1/agents", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code

    assert status_with(new) == 401
    node.token_file.write_text(f"{old}\n{new}\n")  # add: both accepted, clients still send the old one
    wait_for(lambda: status_with(new) == 200, timeout=20, what="the node to accept the added token")
    assert status_with(old) == 200
    assert [(t["id"], t["primary"]) for t in facts(node)["api"]["tokens"]] == [(ids[old], True), (ids[new], False)]
    node.token_file.write_text(f"{new}\n")  # drop the old one
    wait_for(lambda: status_with(old) == 401, timeout=20, what="the node to refuse the dropped token")
    assert status_with(new) == 200
    # A file that cannot be used (a token too short) is refused and the tokens in force stay.
    node.token_file.write_text("short\n")
    # The file is looked at when a call needs it (at most every 2 s): call until the node says it did.
    wait_for(lambda: status_with(new) == 200 and "keeping the current tokens" in node.log_file.read_text(),
             timeout=20, what="the node to look at the unusable token file")
    assert status_with("short") == 401


def test_cert_status_reads_what_the_node_serves(node: NodeProcess, tmp_path: Path) -> None:
    """`caxton security cert-status` against one node: its certificate and its CA, judged
    against --renew-before (the runbook's table)."""
    import json
    import subprocess
    import sys

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "caxton_cli", "security", "cert-status", "--api", node.api,
                               "--token-file", str(node.token_file), *extra], capture_output=True, text=True,
                              timeout=60)

    leaf = x509.load_pem_x509_certificate((tmp_path / "ca" / f"{node.node_id}.crt").read_bytes())
    table = run()
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0] == ["NODE-ID", "EXPIRES-IN", "STATUS"]
    assert rows[1][0] == node.node_id and rows[1][-1] == "OK"  # issue-cert's 365 days > the default 720h
    assert rows[2][0] == "CA" and rows[2][-1] == "OK"
    warned = json.loads(run("--renew-before", "9000h", "-o", "json").stdout)
    assert [(n["node"], n["status"], n["fingerprint"]) for n in warned["nodes"]] == [
        (node.node_id, "WARNING", pki.fingerprint(leaf))]
    assert run("--renew-before", "soon").returncode == 2
