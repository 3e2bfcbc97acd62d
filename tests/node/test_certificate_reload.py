"""Renewed and rotated node certificates are served on new connections without a restart,
and a dropped CA stops being trusted (the last phase of a CA rotation)."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest
from caxton_node import pki
from caxton_node.peers.channel import CertificateReloader, client_context, is_handshake_failure
from cryptography import x509


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> x509.Certificate:
    """Runs one TLS handshake over a socket pair; the certificate the server showed."""
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def accept() -> None:
        try:
            server.wrap_socket(left, server_side=True).close()
        except (ssl.SSLError, OSError) as err:
            errors.append(err)

    with left, right:
        accepted = threading.Thread(target=accept)
        accepted.start()
        try:
            tls = client.wrap_socket(right)
            der = tls.getpeercert(binary_form=True)
            tls.close()
        finally:
            accepted.join(timeout=5)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def test_renewed_certificate_is_served_after_check(tmp_path: Path) -> None:
    ca = pki.new_ca("reload-ca")
    ca.write(tmp_path / "ca.crt", tmp_path / "ca.key")
    first = pki.issue(ca, "node-a")
    first.write(tmp_path / "a.crt", tmp_path / "a.key")
    pki.issue(ca, "node-b").write(tmp_path / "b.crt", tmp_path / "b.key")
    client = client_context(tmp_path / "ca.crt", tmp_path / "b.crt", tmp_path / "b.key")
    reloader = CertificateReloader(tmp_path / "ca.crt", tmp_path / "a.crt", tmp_path / "a.key")
    assert handshake(reloader.server, client).serial_number == first.cert.serial_number
    assert reloader.check() is False  # nothing changed

    renewed = pki.issue(ca, "node-a")
    renewed.write(tmp_path / "a.crt", tmp_path / "a.key")
    assert handshake(reloader.server, client).serial_number == first.cert.serial_number  # not yet looked at
    assert reloader.check() is True
    assert handshake(reloader.server, client).serial_number == renewed.cert.serial_number
    assert reloader.report()["leaf"]["fingerprint"] == pki.fingerprint(renewed.cert)
    # Rewriting identical files (as a kubelet refreshing a Secret volume does) is no change.
    renewed.write(tmp_path / "a.crt", tmp_path / "a.key")
    assert reloader.check() is False


def test_half_written_files_are_retried_not_loaded(tmp_path: Path) -> None:
    ca = pki.new_ca("reload-ca")
    ca.write(tmp_path / "ca.crt", tmp_path / "ca.key")
    first = pki.issue(ca, "node-a")
    first.write(tmp_path / "a.crt", tmp_path / "a.key")
    reloader = CertificateReloader(tmp_path / "ca.crt", tmp_path / "a.crt", tmp_path / "a.key")
    other = pki.issue(ca, "node-a")
    (tmp_path / "a.crt").write_bytes(other.cert_pem)  # the key does not match yet
    assert reloader.check() is False
    assert reloader.report()["leaf"]["fingerprint"] == pki.fingerprint(first.cert)  # still the loaded one
    (tmp_path / "a.key").write_bytes(other.key_pem)
    assert reloader.check() is True
    assert reloader.report()["leaf"]["fingerprint"] == pki.fingerprint(other.cert)


def test_ca_rotation_phases_trust_both_then_only_the_new_ca(tmp_path: Path) -> None:
    """Phase 1 trusts old and new, phase 2 serves a leaf of the new CA, phase 3 drops the old CA:
    a peer that still holds only an old-CA certificate is refused after phase 3."""
    old, new = pki.new_ca("old-ca"), pki.new_ca("new-ca")
    write(tmp_path / "ca.crt", old.cert_pem)
    pki.issue(old, "node-a").write(tmp_path / "a.crt", tmp_path / "a.key")
    pki.issue(old, "node-b").write(tmp_path / "old-b.crt", tmp_path / "old-b.key")
    write(tmp_path / "old-ca.crt", old.cert_pem)
    old_client = client_context(tmp_path / "old-ca.crt", tmp_path / "old-b.crt", tmp_path / "old-b.key")
    reloader = CertificateReloader(tmp_path / "ca.crt", tmp_path / "a.crt", tmp_path / "a.key")
    assert [c["fingerprint"] for c in reloader.report()["trusted"]] == [pki.fingerprint(old.cert)]

    write(tmp_path / "ca.crt", old.cert_pem + new.cert_pem)  # phase 1
    assert reloader.check() is True
    assert {c["fingerprint"] for c in reloader.report()["trusted"]} == {pki.fingerprint(old.cert),
                                                                        pki.fingerprint(new.cert)}
    leaf = pki.issue(new, "node-a")  # phase 2
    leaf.write(tmp_path / "a.crt", tmp_path / "a.key")
    assert reloader.check() is True
    # A peer not yet reloaded (old leaf) that already trusts both still meets this node.
    write(tmp_path / "both.crt", old.cert_pem + new.cert_pem)
    lagging = client_context(tmp_path / "both.crt", tmp_path / "old-b.crt", tmp_path / "old-b.key")
    assert handshake(reloader.server, lagging).serial_number == leaf.cert.serial_number
    write(tmp_path / "ca.crt", new.cert_pem)  # phase 3
    assert reloader.check() is True
    assert [c["fingerprint"] for c in reloader.report()["trusted"]] == [pki.fingerprint(new.cert)]
    with pytest.raises(ssl.SSLError) as refused:
        handshake(reloader.server, old_client)
    assert is_handshake_failure(refused.value)
    pki.issue(new, "node-b").write(tmp_path / "new-b.crt", tmp_path / "new-b.key")
    write(tmp_path / "new-ca.crt", new.cert_pem)
    new_client = client_context(tmp_path / "new-ca.crt", tmp_path / "new-b.crt", tmp_path / "new-b.key")
    assert handshake(reloader.server, new_client).serial_number == leaf.cert.serial_number
