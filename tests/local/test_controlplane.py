"""The control plane answers through its kubeconfig like any cluster."""

from __future__ import annotations

import json

from caxton_local.toolchain import KUBERNETES

from tests.support.cluster import ClusterUnderTest


def test_kubectl_lists_namespaces(cluster: ClusterUnderTest) -> None:
    names = cluster.kubectl("get", "ns", "-o", "name").stdout.split()
    assert "namespace/default" in names
    assert "namespace/kube-system" in names


def test_kubectl_parses_the_server_version(cluster: ClusterUnderTest) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    server = version["serverVersion"]
    assert server["major"] == "1"
    if cluster.plane is not None:
        # The pinned release, with the version ldflags applied.
        assert server["gitVersion"] == KUBERNETES.version()
        assert version["clientVersion"]["gitVersion"] == KUBERNETES.version()


def test_every_component_is_healthy(process_cluster: ClusterUnderTest) -> None:
    assert process_cluster.plane is not None
    status = {c.name: c for c in process_cluster.plane.status()}
    assert set(status) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "coredns", "kubelet"}
    unhealthy = [name for name, c in status.items() if not c.healthy]
    assert not unhealthy
    assert all(c.rss_bytes > 0 for c in status.values())


def test_openapi_v2_is_served_intact(cluster: ClusterUnderTest) -> None:
    # `kubectl apply` validates against /openapi/v2; a Go 1.27-built apiserver breaks it.
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe, namespace: default}\ndata: {a: b}\n"
    ))
    assert "configmap/probe" in result.stdout
