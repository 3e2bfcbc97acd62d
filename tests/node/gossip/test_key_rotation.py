"""Rotating the gossip key on running nodes: add the new key everywhere, make it primary, drop
the old one, each an edit of every node's key file that the nodes load live. Nobody is ever
suspected, gossip works on the new key alone, and a node holding only the old key is refused."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from tests.node.gossip.test_cluster_processes import membership_events
from tests.support.nodes import NodeFactory, NodeProcess, cluster_node, states, wait_all_alive
from tests.support.waiting import wait_for


def new_key() -> bytes:
    return os.urandom(32)


def write_keys(path: Path, keys: list[bytes]) -> None:
    path.write_text("".join(base64.b64encode(k).decode() + "\n" for k in keys))


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).digest()[:4].hex()


def status(node: NodeProcess) -> dict[str, Any]:
    with node.client() as client:
        result: dict[str, Any] = client.get("/v1/cluster/status").json()
    return result


def probes(node: NodeProcess) -> int:
    with node.client() as client:
        count: int = client.get("/v1/cluster/performance").json()["gossipProbesObserved"]
    return count


def test_gossip_key_rotates_live_without_a_split(node_factory: NodeFactory, tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    files = [tmp_path / f"keys-{i}" / "gossip.key" for i in range(3)]  # each node its own copy, as a pod has
    for path in files:
        path.parent.mkdir(parents=True)
        write_keys(path, [old])
    first = cluster_node(node_factory, files[0], [], 3)
    nodes = [first] + [cluster_node(node_factory, path, [f"{first.address}:7946"], 3) for path in files[1:]]
    wait_all_alive(nodes)
    events_before = {n.node_id: {m.node_id: len(membership_events(n, m.node_id)) for m in nodes} for n in nodes}

    for step, keys in (("add the new key", [old, new]), ("make it primary", [new, old]), ("drop the old key", [new])):
        for path in files:
            write_keys(path, keys)
        expected = {"primary": key_id(keys[0]), "keys": len(keys), "ids": [key_id(k) for k in keys]}
        for node in nodes:
            wait_for(lambda node=node, expected=expected: status(node)["gossipKeyring"] == expected,  # type: ignore[misc]
                     timeout=30,
                     what=f"{node.node_id} to load the keyring ({step})")
    # Gossip runs on the new key alone: every node completes fresh probes with it.
    counts = {n.node_id: probes(n) for n in nodes}
    for node in nodes:
        wait_for(lambda node=node: probes(node) >= min(counts[node.node_id] + 4, 512),  # type: ignore[misc]
                 timeout=30, what=f"{node.node_id} to probe its peers under the new key")
    wait_all_alive(nodes)
    for watcher in nodes:
        for member in nodes:
            later = membership_events(watcher, member.node_id)[events_before[watcher.node_id][member.node_id]:]
            assert later == [], f"{watcher.node_id} saw {member.node_id} change during the rotation: {later}"
        assert status(watcher)["droppedGossipPackets"] == 0

    # A node that still has only the old key cannot join any more.
    stale = tmp_path / "stale" / "gossip.key"
    stale.parent.mkdir()
    write_keys(stale, [old])
    straggler = cluster_node(node_factory, stale, [f"{first.address}:7946"], 3)
    wait_for(lambda: status(first)["droppedGossipPackets"] >= 3, timeout=30,
             what="the old-key node's packets to be dropped")
    assert straggler.node_id not in states(first)
    assert set(states(straggler)) == {straggler.node_id}
