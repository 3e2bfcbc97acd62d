"""The cluster's secrets: its CA, one certificate per node (CN = pod name), the gossip
key and the API token. Existing material is kept; only what is missing is made."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets as pysecrets
from dataclasses import dataclass
from typing import Any

from caxton_node import pki

from caxton_operator.config import parse_hours
from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.resources.naming import Names

Obj = dict[str, Any]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _secret(names: Names, name: str, data: dict[str, bytes]) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": names.namespace, "labels": dict(names.labels)},
            "data": {k: _b64(v) for k, v in data.items()}}


def gossip_secret(names: Names) -> Obj:
    return _secret(names, names.gossip, {"key": base64.b64encode(os.urandom(32)) + b"\n"})


def token_secret(names: Names) -> Obj:
    return _secret(names, names.token, {"token": pysecrets.token_urlsafe(32).encode()})


def ca_secret(names: Names) -> Obj:
    ca = pki.new_ca(f"caxton-{names.namespace}-{names.cluster}-ca")
    return _secret(names, names.ca, {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem})


def ca_keypair(secret: Obj) -> pki.KeyPair:
    """The CA in a Secret: ca.crt/ca.key (ours), or tls.crt/tls.key (e.g. a cert-manager CA)."""
    data = secret.get("data") or {}
    for cert_key, key_key in (("ca.crt", "ca.key"), ("tls.crt", "tls.key")):
        if cert_key in data and key_key in data:
            return pki.KeyPair(base64.b64decode(data[cert_key]), base64.b64decode(data[key_key]))
    name = secret["metadata"]["name"]
    raise ValueError(f"Secret {name} holds no CA: it needs ca.crt and ca.key (or tls.crt and tls.key)")


@dataclass(frozen=True)
class NodeCertificates:
    secret: Obj
    renewed: list[str]  # pods whose certificate was (re)issued
    not_after: dt.datetime  # the earliest expiry


def tls_secret(spec: CaxtonClusterSpec, names: Names, ca: pki.KeyPair, existing: Obj | None,
               now: dt.datetime | None = None) -> NodeCertificates:
    """A certificate for every ordinal; keeps those issued by this CA that are outside the
    renew-before window, (re)issues the rest."""
    now = now or dt.datetime.now(dt.UTC)
    have = {k: base64.b64decode(v) for k, v in ((existing or {}).get("data") or {}).items()}
    if have.get("ca.crt") != ca.cert_pem:
        have = {}
    data = {"ca.crt": ca.cert_pem}
    validity = dt.timedelta(hours=parse_hours(spec.tls.cert_duration))
    renew_before = dt.timedelta(hours=parse_hours(spec.tls.renew_before))
    renewed, expiries = [], []
    for ordinal in range(spec.replicas):
        pod = names.pod(ordinal)
        cert, key = have.get(f"{pod}.crt"), have.get(f"{pod}.key")
        if cert is None or key is None or pki.expires_at(cert) - now <= renew_before:
            pair = pki.issue(ca, pod, dns_names=(pod, f"{pod}.{names.peers_service}.{names.namespace}.svc"),
                             valid_for=validity)
            cert, key = pair.cert_pem, pair.key_pem
            renewed.append(pod)
        data[f"{pod}.crt"], data[f"{pod}.key"] = cert, key
        expiries.append(pki.expires_at(cert))
    return NodeCertificates(_secret(names, names.tls, data), renewed, min(expiries))
