"""The cluster's secrets: its CA, one certificate per node (CN = pod name), the gossip
key and the API token. Existing material is kept; only what is missing is made."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets as pysecrets
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


def tls_secret(spec: CaxtonClusterSpec, names: Names, ca_secret_obj: Obj, existing: Obj | None) -> Obj:
    """Node certificates for every ordinal; keeps the ones already issued by this CA."""
    ca = pki.KeyPair(base64.b64decode(ca_secret_obj["data"]["ca.crt"]),
                     base64.b64decode(ca_secret_obj["data"]["ca.key"]))
    have = {k: base64.b64decode(v) for k, v in ((existing or {}).get("data") or {}).items()}
    if have.get("ca.crt") != ca.cert_pem:
        have = {}
    data = {"ca.crt": ca.cert_pem}
    validity = dt.timedelta(hours=parse_hours(spec.tls.cert_duration))
    for ordinal in range(spec.replicas):
        pod = names.pod(ordinal)
        if f"{pod}.crt" in have and f"{pod}.key" in have:
            data[f"{pod}.crt"], data[f"{pod}.key"] = have[f"{pod}.crt"], have[f"{pod}.key"]
            continue
        pair = pki.issue(ca, pod, dns_names=(pod, f"{pod}.{names.peers_service}.{names.namespace}.svc"),
                         valid_for=validity)
        data[f"{pod}.crt"], data[f"{pod}.key"] = pair.cert_pem, pair.key_pem
    return _secret(names, names.tls, data)
