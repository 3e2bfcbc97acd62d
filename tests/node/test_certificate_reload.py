"""A renewed node certificate is served on new connections without a restart."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from caxton_node import pki
from caxton_node.peers.channel import CertificateReloader, client_context, server_context
from cryptography import x509


def served_serial(server: ssl.SSLContext, client: ssl.SSLContext) -> int:
    """Runs one TLS handshake over a socket pair; the serial of the certificate the server showed."""
    left, right = socket.socketpair()
    with left, right:
        accepted = threading.Thread(target=lambda: server.wrap_socket(left, server_side=True).close())
        accepted.start()
        tls = client.wrap_socket(right)
        der = tls.getpeercert(binary_form=True)
        tls.close()
        accepted.join(timeout=5)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_renewed_certificate_is_served_after_check(tmp_path: Path) -> None:
    ca = pki.new_ca("reload-ca")
    ca.write(tmp_path / "ca.crt", tmp_path / "ca.key")
    first = pki.issue(ca, "node-a")
    first.write(tmp_path / "a.crt", tmp_path / "a.key")
    pki.issue(ca, "node-b").write(tmp_path / "b.crt", tmp_path / "b.key")
    server = server_context(tmp_path / "ca.crt", tmp_path / "a.crt", tmp_path / "a.key")
    client = client_context(tmp_path / "ca.crt", tmp_path / "b.crt", tmp_path / "b.key")
    reloader = CertificateReloader(tmp_path / "ca.crt", tmp_path / "a.crt", tmp_path / "a.key", [server])
    assert served_serial(server, client) == first.cert.serial_number
    assert reloader.check() is False  # nothing changed

    renewed = pki.issue(ca, "node-a")
    renewed.write(tmp_path / "a.crt", tmp_path / "a.key")
    assert served_serial(server, client) == first.cert.serial_number  # not yet looked at
    assert reloader.check() is True
    assert served_serial(server, client) == renewed.cert.serial_number
    # Rewriting identical files (as a kubelet refreshing a Secret volume does) is no change.
    renewed.write(tmp_path / "a.crt", tmp_path / "a.key")
    assert reloader.check() is False


def test_half_written_files_are_retried_not_loaded(tmp_path: Path) -> None:
    ca = pki.new_ca("reload-ca")
    ca.write(tmp_path / "ca.crt", tmp_path / "ca.key")
    pki.issue(ca, "node-a").write(tmp_path / "a.crt", tmp_path / "a.key")
    server = server_context(tmp_path / "ca.crt", tmp_path / "a.crt", tmp_path / "a.key")
    reloader = CertificateReloader(tmp_path / "ca.crt", tmp_path / "a.crt", tmp_path / "a.key", [server])
    other = pki.issue(ca, "node-a")
    (tmp_path / "a.crt").write_bytes(other.cert_pem)  # the key does not match yet
    assert reloader.check() is False
    (tmp_path / "a.key").write_bytes(other.key_pem)
    assert reloader.check() is True
