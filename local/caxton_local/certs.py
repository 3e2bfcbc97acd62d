"""The local control plane's PKI and kubeconfigs.

One cluster CA signs the apiserver's serving certificate and every client
identity; a separate front-proxy CA backs the request-header flags, without
which the controller-manager loops on a missing CA bundle.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml
from caxton_node import pki

from caxton_local.layout import Layout

# Client identities: file stem -> (CN, organizations). Controller-manager and scheduler
# get the users the default RBAC policy already binds; admin and the process kubelet
# are cluster admins (the kubelet serves several Nodes from one process).
CLIENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("caxton-admin", ("system:masters",)),
    "controller-manager": ("system:kube-controller-manager", ()),
    "scheduler": ("system:kube-scheduler", ()),
    "kubelet": ("caxton-process-kubelet", ("system:masters",)),
    "coredns": ("system:coredns", ()),
}


def ensure_pki(layout: Layout) -> None:
    """Creates whatever part of the PKI is missing; existing keys are kept."""
    d = layout.pki
    d.mkdir(parents=True, exist_ok=True)
    ca_paths = (d / "ca.crt", d / "ca.key")
    if not ca_paths[0].exists():
        pki.new_ca("caxton-local-ca").write(*ca_paths)
    ca = pki.KeyPair.read(*ca_paths)
    if not (d / "apiserver.crt").exists():
        pki.issue(
            ca, "kube-apiserver",
            dns_names=(
                "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=("127.0.0.1", "10.96.0.1"),
            client=False,
        ).write(d / "apiserver.crt", d / "apiserver.key")
    for stem, (cn, orgs) in CLIENTS.items():
        if not (d / f"{stem}.crt").exists():
            pki.issue(ca, cn, organizations=orgs, server=False).write(
                d / f"{stem}.crt", d / f"{stem}.key"
            )
    # The kubelet API: served on 127.0.0.1 (the Nodes' InternalIP), called by the apiserver.
    if not (d / "kubelet-serving.crt").exists():
        pki.issue(ca, "caxton-process-kubelet", dns_names=("localhost",), ip_addresses=("127.0.0.1",),
                  client=False).write(d / "kubelet-serving.crt", d / "kubelet-serving.key")
    if not (d / "apiserver-kubelet-client.crt").exists():
        pki.issue(ca, "kube-apiserver-kubelet-client", organizations=("system:masters",), server=False).write(
            d / "apiserver-kubelet-client.crt", d / "apiserver-kubelet-client.key")
    fp_paths = (d / "front-proxy-ca.crt", d / "front-proxy-ca.key")
    if not fp_paths[0].exists():
        pki.new_ca("caxton-local-front-proxy-ca").write(*fp_paths)
    if not (d / "front-proxy-client.crt").exists():
        pki.issue(
            pki.KeyPair.read(*fp_paths), "front-proxy-client", server=False
        ).write(d / "front-proxy-client.crt", d / "front-proxy-client.key")
    if not (d / "sa.key").exists():
        private, public = pki.new_rsa_key_pem()
        (d / "sa.key").write_bytes(private)
        (d / "sa.pub").write_bytes(public)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfigs(layout: Layout, server: str) -> None:
    """One kubeconfig per client identity, certificates embedded so they can be copied."""
    d = layout.pki
    for stem in CLIENTS:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{
                "name": "caxton-local",
                "cluster": {"server": server, "certificate-authority-data": _b64(d / "ca.crt")},
            }],
            "users": [{
                "name": stem,
                "user": {
                    "client-certificate-data": _b64(d / f"{stem}.crt"),
                    "client-key-data": _b64(d / f"{stem}.key"),
                },
            }],
            "contexts": [{"name": "caxton-local", "context": {"cluster": "caxton-local", "user": stem}}],
            "current-context": "caxton-local",
        }
        path = layout.kubeconfig(stem)
        path.touch(mode=0o600, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
