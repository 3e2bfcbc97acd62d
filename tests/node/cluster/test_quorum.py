"""Quorum follows graceful departures but not crashes: members that left stop counting, so the
rest keep a majority; members that crashed keep counting, so losing too many turns a node
read-only."""

from __future__ import annotations

import base64
import signal
from pathlib import Path
from typing import Any

from tests.support.nodes import NodeFactory, NodeProcess, start_cluster
from tests.support.waiting import wait_for

DETECTION_TIMEOUT = 2.0  # coordination.partition.detection_timeout of the test clusters


def status(node: NodeProcess) -> dict[str, Any]:
    with node.client() as client:
        result: dict[str, Any] = client.get("/v1/cluster/status").json()
    return result


def member(node: NodeProcess, member_id: str) -> dict[str, Any]:
    with node.client() as client:
        return next(m for m in client.get("/v1/cluster/members").json() if m["id"] == member_id)


def test_graceful_leaves_do_not_count_against_quorum(node_factory: NodeFactory, agents: dict[str, bytes],
                                                     tmp_path: Path) -> None:
    nodes = start_cluster(node_factory, tmp_path, 5)
    a, b, c, d, e = nodes
    assert (status(a)["expected"], status(a)["quorum"]) == (5, 3)
    d.stop()  # graceful: SIGTERM, the node gossips that it leaves
    e.stop()
    wait_for(lambda: (status(a)["expected"], status(a)["quorum"]) == (3, 2), timeout=30,
             what="the two departures to lower the quorum")
    assert member(a, d.node_id)["state"] == "left"

    c.stop(signal.SIGKILL)  # a crash: still counts, but 2 of 3 is a majority
    wait_for(lambda: member(a, c.node_id)["state"] == "failed", timeout=30, what="the crash to be detected")
    # Failed for longer than the partition detection timeout, measured by the node itself.
    wait_for(lambda: member(a, c.node_id)["stateForSeconds"] >= DETECTION_TIMEOUT + 1, timeout=30,
             what="the failure to outlast the detection timeout")
    after_crash = status(a)
    assert (after_crash["expected"], after_crash["quorum"]) == (3, 2)
    assert after_crash["status"] == "HEALTHY" and not after_crash["readOnly"]
    with a.client() as client:
        assert client.post("/v1/agents", json={"id": "echo", "wasm": base64.b64encode(agents["echo"]).decode()}
                           ).status_code == 201
    # Had the departed members counted (quorum 3 of 5), two reachable members would be a minority.
    b.stop(signal.SIGKILL)  # a second crash: 1 of 3 is not
    wait_for(lambda: status(a)["readOnly"], timeout=30, what="a to turn read-only")
    assert status(a)["status"] == "DEGRADED"
