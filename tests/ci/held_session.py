"""Run only by tests/ci/test_interrupted_run.py, in a pytest of its own (the name keeps it out of
normal collection): it holds a local control plane with a running pod, a node process and an
iptables chain, says so in $CAXTON_HELD_FILE, and waits to be interrupted."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.manifests import pod
from tests.support.cluster import ClusterUnderTest
from tests.support.netfault import NetworkPartition
from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.waiting import wait_for


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    factory = NodeFactory(tmp_path)
    try:
        yield factory()
    finally:
        factory.stop_all()


def test_hold_a_cluster_until_interrupted(cluster: ClusterUnderTest, node: NodeProcess,
                                          partition: NetworkPartition) -> None:
    assert cluster.plane is not None, "needs the local control plane"
    cluster.apply(pod("idle", image="busybox", command=["sleep", "3600"]), "default")
    wait_for(lambda: cluster.kube.get("/api/v1/namespaces/default/pods/idle")["status"].get("phase") == "Running",
             timeout=120, what="the pod to run")
    partition.cut([node.address], [f"{node.address.rsplit('.', 1)[0]}.254"])
    assert node.proc is not None
    Path(os.environ["CAXTON_HELD_FILE"]).write_text(json.dumps({
        "chain": partition.chain, "stateDir": str(cluster.plane.layout.root), "nodePid": node.proc.pid,
    }))
    for _ in range(600):
        time.sleep(1)
    raise AssertionError("nobody interrupted this run")
