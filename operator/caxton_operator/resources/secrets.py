"""The cluster's secrets: its CA, one certificate per node (CN = pod name), the gossip
key and the API token. Existing material is kept; only what is missing is made."""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets as pysecrets
from collections.abc import Iterable
from typing import Any

from caxton_node import pki
from cryptography import x509

from caxton_operator.config import parse_hours
from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.resources.naming import Names

Obj = dict[str, Any]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _secret(names: Names, name: str, data: dict[str, bytes], annotations: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": names.namespace, "labels": dict(names.labels)}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta,
            "data": {k: _b64(v) for k, v in data.items()}}


def secret(names: Names, name: str, data: dict[str, bytes], annotations: dict[str, str] | None = None) -> Obj:
    """A Secret of this cluster (labels, namespace), e.g. rewritten by a rotation."""
    return _secret(names, name, data, annotations)


def new_gossip_key() -> bytes:
    return base64.b64encode(os.urandom(32))


def new_token() -> bytes:
    return pysecrets.token_urlsafe(32).encode()


def gossip_secret(names: Names) -> Obj:
    return _secret(names, names.gossip, {"key": base64.b64encode(os.urandom(32)) + b"\n"})


def token_secret(names: Names) -> Obj:
    return _secret(names, names.token, {"token": pysecrets.token_urlsafe(32).encode()})


def ca_secret(names: Names, annotations: dict[str, str] | None = None, generation: int = 1) -> Obj:
    suffix = f"-g{generation}" if generation > 1 else ""
    ca = pki.new_ca(f"caxton-{names.namespace}-{names.cluster}-ca{suffix}")
    return _secret(names, names.ca, {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem}, annotations)


def ca_keypair(secret: Obj) -> pki.KeyPair:
    """The CA in a Secret: ca.crt/ca.key (ours), or tls.crt/tls.key (e.g. a cert-manager CA)."""
    data = secret.get("data") or {}
    for cert_key, key_key in (("ca.crt", "ca.key"), ("tls.crt", "tls.key")):
        if cert_key in data and key_key in data:
            return pki.KeyPair(base64.b64decode(data[cert_key]), base64.b64decode(data[key_key]))
    name = secret["metadata"]["name"]
    raise ValueError(f"Secret {name} holds no CA: it needs ca.crt and ca.key (or tls.crt and tls.key)")


def node_leaf(spec: CaxtonClusterSpec, names: Names, ca: pki.KeyPair, pod: str) -> pki.KeyPair:
    """A node's certificate: CN = pod name, valid for tls.certDuration (at most the CA's life)."""
    return pki.issue(ca, pod, dns_names=(pod, f"{pod}.{names.peers_service}.{names.namespace}.svc"),
                     valid_for=dt.timedelta(hours=parse_hours(spec.tls.cert_duration)))


def node_certificates(spec: CaxtonClusterSpec, names: Names, ca: pki.KeyPair, existing: Obj | None, *,
                      bundle: list[x509.Certificate], issue: Iterable[str]) -> Obj:
    """The Secret the nodes mount: the trust bundle (`ca.crt`, one or more CAs) and a certificate
    per ordinal. Pods in `issue` get a new one from `ca`; the others keep theirs; ordinals
    beyond spec.replicas are dropped."""
    have = {k: base64.b64decode(v) for k, v in ((existing or {}).get("data") or {}).items()}
    data = {"ca.crt": pki.bundle_pem(bundle)}
    fresh = set(issue)
    for ordinal in range(spec.replicas):
        pod = names.pod(ordinal)
        cert, key = have.get(f"{pod}.crt"), have.get(f"{pod}.key")
        if pod in fresh or cert is None or key is None:
            pair = node_leaf(spec, names, ca, pod)
            cert, key = pair.cert_pem, pair.key_pem
        data[f"{pod}.crt"], data[f"{pod}.key"] = cert, key
    return _secret(names, names.tls, data)
