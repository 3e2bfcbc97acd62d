"""`caxton cluster verify` on real nodes: each kind of difference is made for real (gossip from
some members to one node is dropped with iptables, so its view goes stale) and must be named,
with exit code 3; once the link is back the same command finds the cluster consistent."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_direct_mode import caxton
from tests.node.test_agents import deploy
from tests.support.netfault import NetworkPartition
from tests.support.nodes import NodeFactory, NodeProcess, cluster_node, gossip_key, wait_all_alive
from tests.support.waiting import wait_for

# A member whose gossip cannot reach a node stays suspect there for the whole test, never failed:
# verify must still read it and compare.
PATIENT = 100_000


def verify(node: NodeProcess) -> tuple[int, str]:
    result = caxton(node, "cluster", "verify")
    return result.returncode, result.stdout + result.stderr


def test_verify_names_each_kind_of_difference(node_factory: NodeFactory, agents: dict[str, bytes],
                                              tmp_path: Path, partition: NetworkPartition) -> None:
    key = gossip_key(tmp_path / "keys")
    m = cluster_node(node_factory, key, [], 2, version="1.0.0", suspicion_multiplier=PATIENT)
    v = cluster_node(node_factory, key, [f"{m.address}:7946"], 2, version="1.0.0", suspicion_multiplier=PATIENT)
    wait_all_alive([m, v])
    with m.client() as client:
        assert deploy(client, "doomed", agents["echo"]).status_code == 201
    wait_for(lambda: verify(v)[0] == 0, timeout=20, what="verify to pass on the healthy cluster")

    # From now on v hears no gossip from m, nor from the newcomer n: its view goes stale.
    partition.drop(m.address, v.address, protocol="udp")
    n = cluster_node(node_factory, key, [f"{m.address}:7946"], 2, version="1.0.0", start=False,
                     suspicion_multiplier=PATIENT)
    partition.drop(n.address, v.address, protocol="udp")
    n.start()
    with m.client() as client:
        assert client.delete("/v1/agents/doomed").status_code == 204
        assert deploy(client, "fresh", agents["echo"]).status_code == 201
        assert deploy(client, "twin", agents["echo"]).status_code == 201
    with n.client() as client:
        assert deploy(client, "twin", agents["echo"]).status_code == 201
    m.stop()  # an upgrade of m, which v does not hear about
    m.env["CAXTON_VERSION"] = "2.0.0"
    m.extra_config["coordination"]["cluster"]["seeds"] = [f"{n.address}:7946"]
    m.start()

    expected = [
        f"membership differs on {n.node_id}: up for {', '.join(sorted([m.node_id, n.node_id]))}; "
        f"{v.node_id} sees it not at all",
        f"version differs for {m.node_id}: {v.node_id} sees 1.0.0, {m.node_id} runs 2.0.0",
        f"stale directory entry: {v.node_id} lists doomed on {m.node_id}, which {m.node_id} does not run",
        f"missing directory entry: {m.node_id} runs fresh, absent from {v.node_id}'s directory",
        "directory digests differ: ",
        f"agent twin runs on several nodes: {', '.join(sorted([m.node_id, n.node_id]))}",
    ]
    for asked in (n, v):  # from a member that sees everyone, and from the one whose view is stale
        last: list[str] = []

        def reported(asked: NodeProcess = asked, last: list[str] = last) -> str:
            code, out = verify(asked)
            last[:] = [f"exit {code}:\n{out}"]
            return out if code == 3 and all(f"ERROR: {asked.node_id}: {line}" in out for line in expected) else ""

        try:
            out = wait_for(reported, timeout=30, what=f"verify on {asked.node_id} to name every difference")
        except AssertionError as err:
            raise AssertionError(f"{err}\n{last[0] if last else ''}") from None
        assert "OK:" not in out

    partition.heal()
    with n.client() as client:
        assert client.delete("/v1/agents/twin").status_code == 204
    wait_all_alive([m, v, n])
    out = wait_for(lambda: (lambda r: r[1] if r[0] == 0 else None)(verify(v)), timeout=30,
                   what="verify to pass once gossip flows again")
    assert "OK: 1 node(s) agree, every member consistent" in out
