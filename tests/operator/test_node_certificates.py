"""Node certificates: issued per ordinal, kept while valid, renewed inside renewBefore."""

from __future__ import annotations

import base64
import datetime as dt

from caxton_node import pki
from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.resources import secrets
from caxton_operator.resources.naming import Names
from cryptography import x509

NAMES = Names("demo", "ns")
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def spec(replicas: int = 3) -> CaxtonClusterSpec:
    return CaxtonClusterSpec.model_validate({"version": "1.2.0", "replicas": replicas,
                                             "tls": {"certDuration": "10h", "renewBefore": "2h"}})


def common_name(secret: dict[str, object], pod: str) -> str:
    data = secret["data"]
    assert isinstance(data, dict)
    cert = x509.load_pem_x509_certificate(base64.b64decode(data[f"{pod}.crt"]))
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def test_certificates_are_kept_until_the_renew_window_then_reissued() -> None:
    ca = pki.new_ca("test")
    first = secrets.tls_secret(spec(), NAMES, ca, None, now=NOW)
    assert first.renewed == ["demo-0", "demo-1", "demo-2"]
    assert [common_name(first.secret, f"demo-{i}") for i in range(3)] == ["demo-0", "demo-1", "demo-2"]
    # Issued certificates run from the real clock; look at them 7 h later (3 h left) and 9 h later (1 h left).
    issued = first.not_after
    kept = secrets.tls_secret(spec(), NAMES, ca, first.secret, now=issued - dt.timedelta(hours=3))
    assert kept.renewed == [] and kept.secret["data"] == first.secret["data"]
    renewed = secrets.tls_secret(spec(), NAMES, ca, first.secret, now=issued - dt.timedelta(hours=1))
    assert renewed.renewed == ["demo-0", "demo-1", "demo-2"]


def test_scaling_issues_only_new_ordinals_and_a_new_ca_reissues_all() -> None:
    ca = pki.new_ca("test")
    three = secrets.tls_secret(spec(3), NAMES, ca, None)
    five = secrets.tls_secret(spec(5), NAMES, ca, three.secret)
    assert five.renewed == ["demo-3", "demo-4"]
    assert secrets.tls_secret(spec(2), NAMES, ca, five.secret).secret["data"].keys() == {
        "ca.crt", "demo-0.crt", "demo-0.key", "demo-1.crt", "demo-1.key"}
    assert secrets.tls_secret(spec(3), NAMES, pki.new_ca("other"), three.secret).renewed == [
        "demo-0", "demo-1", "demo-2"]


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
