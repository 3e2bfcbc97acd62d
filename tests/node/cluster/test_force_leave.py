"""`cluster remove --force`: a failed member that will not come back is forgotten (force-leave), so
it no longer counts toward the quorum; a member that is still alive is refused."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.nodes import NodeFactory, start_cluster, states
from tests.support.waiting import wait_for


def test_force_leave_forgets_a_failed_member_only(node_factory: NodeFactory, tmp_path: Path) -> None:
    a, b, c = start_cluster(node_factory, tmp_path, 3)
    with a.client() as client:
        refused = client.post(f"/v1/cluster/members/{c.node_id}/force-leave")
        assert refused.status_code == 409 and refused.json()["code"] == "member_not_failed"
        assert client.post("/v1/cluster/members/nobody/force-leave").status_code == 404
    c.stop(signal.SIGKILL)
    wait_for(lambda: states(a).get(c.node_id) == "failed", timeout=60, what=f"{a.node_id} to see it failed")
    with a.client() as client:
        assert client.get("/v1/cluster/status").json()["expected"] == 3  # a crash does not lower the bar
        answer = client.post(f"/v1/cluster/members/{c.node_id}/force-leave")
        assert answer.status_code == 200, answer.text
    # Gossiped: b forgets it too, and both expect two members from now on.
    wait_for(lambda: states(b).get(c.node_id) == "left", timeout=30, what=f"{b.node_id} to see it left")
    for node in (a, b):
        with node.client() as client:
            assert client.get("/v1/cluster/status").json()["expected"] == 2
