"""The node-certificate Secret: a certificate per ordinal (CN = pod name) kept until asked to
reissue it, ordinals beyond replicas dropped, and the trust bundle as given (one or more CAs).
Which pods to (re)issue and which bundle to write is the CA planner's (test_rotation_planner)."""

from __future__ import annotations

import base64

from caxton_node import pki
from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.resources import secrets
from caxton_operator.resources.naming import Names
from cryptography import x509

NAMES = Names("demo", "ns")


def spec(replicas: int = 3) -> CaxtonClusterSpec:
    return CaxtonClusterSpec.model_validate({"version": "1.2.0", "replicas": replicas,
                                             "tls": {"certDuration": "10h", "renewBefore": "2h"}})


def cert(secret: dict[str, object], key: str) -> x509.Certificate:
    data = secret["data"]
    assert isinstance(data, dict)
    return x509.load_pem_x509_certificate(base64.b64decode(data[key]))


def test_every_ordinal_gets_a_certificate_of_its_own_from_the_ca() -> None:
    ca = pki.new_ca("test")
    first = secrets.node_certificates(spec(), NAMES, ca, None, bundle=[ca.cert], issue=())
    for i in range(3):
        leaf = cert(first, f"demo-{i}.crt")
        assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == f"demo-{i}"
        assert pki.issued_by(leaf, ca.cert)
        assert f"demo-{i}.demo-peers.ns.svc" in leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    kept = secrets.node_certificates(spec(), NAMES, ca, first, bundle=[ca.cert], issue=())
    assert kept["data"] == first["data"]
    renewed = secrets.node_certificates(spec(), NAMES, ca, first, bundle=[ca.cert], issue=("demo-1",))
    assert [renewed["data"][f"demo-{i}.crt"] == first["data"][f"demo-{i}.crt"] for i in range(3)] == [
        True, False, True]


def test_scaling_keeps_ordinals_and_the_bundle_may_hold_two_cas() -> None:
    old, new = pki.new_ca("old"), pki.new_ca("new")
    three = secrets.node_certificates(spec(3), NAMES, old, None, bundle=[old.cert], issue=())
    five = secrets.node_certificates(spec(5), NAMES, new, three, bundle=[old.cert, new.cert], issue=())
    assert [pki.fingerprint(c) for c in pki.load_bundle(base64.b64decode(five["data"]["ca.crt"]))] == [
        pki.fingerprint(old.cert), pki.fingerprint(new.cert)]
    assert pki.issued_by(cert(five, "demo-0.crt"), old.cert) and pki.issued_by(cert(five, "demo-4.crt"), new.cert)
    assert secrets.node_certificates(spec(2), NAMES, new, five, bundle=[new.cert], issue=())["data"].keys() == {
        "ca.crt", "demo-0.crt", "demo-0.key", "demo-1.crt", "demo-1.key"}


def test_a_user_ca_secret_may_use_tls_keys() -> None:
    ca = pki.new_ca("user")
    secret = {"metadata": {"name": "my-ca"}, "data": {"tls.crt": base64.b64encode(ca.cert_pem).decode(),
                                                     "tls.key": base64.b64encode(ca.key_pem).decode()}}
    assert secrets.ca_keypair(secret).cert_pem == ca.cert_pem
    try:
        secrets.ca_keypair({"metadata": {"name": "empty"}, "data": {}})
    except ValueError as err:
        assert "empty" in str(err) and "ca.crt" in str(err)
    else:
        raise AssertionError("a Secret without a CA was accepted")


def test_a_ca_that_cannot_serve_is_refused_with_the_reason() -> None:
    ca, other = pki.new_ca("user"), pki.new_ca("other")
    assert pki.ca_problem(ca) is None
    mismatched = pki.ca_problem(pki.KeyPair(ca.cert_pem, other.key_pem))
    assert mismatched is not None and "private key does not match" in mismatched
    leaf = pki.issue(ca, "not-a-ca")
    not_ca = pki.ca_problem(leaf)
    assert not_ca is not None and "is not a CA" in not_ca
    garbage = pki.ca_problem(pki.KeyPair(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
                                         ca.key_pem))
    assert garbage is not None and "not PEM X.509" in garbage
