"""`memory gc`: idle agents get fresh instances (Wasm memory never shrinks otherwise), keeping their
state when they export the snapshot pair; the bytes the node reports freed match the drop in its
resident memory, which the test reads from /proc itself."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

from caxton_node.system import rss_bytes

from tests.support.agents import collect, send
from tests.support.nodes import NodeFactory

INFLATIONS = 4  # messages per ballast agent: 4 MiB written each


def test_memory_gc_frees_what_the_rss_shows(node_factory: NodeFactory, agents: dict[str, bytes]) -> None:
    node = node_factory()
    assert node.proc is not None
    with node.client() as client:
        for i in range(3):
            body = {"id": f"ballast-{i}", "wasm": base64.b64encode(agents["ballast"]).decode(),
                    "limits": {"memory": "64Mi"}}
            assert client.post("/v1/agents", json=body).status_code == 201
        body = {"id": "counter", "wasm": base64.b64encode(agents["counter"]).decode()}
        assert client.post("/v1/agents", json=body).status_code == 201
        client.get("/v1/mailboxes/tester")
        for i in range(3):
            for _ in range(INFLATIONS):
                send(client, f"ballast-{i}", None)
        for _ in range(2):
            send(client, "counter", None)
        assert len(collect(client, "tester", 3 * INFLATIONS + 2)) == 3 * INFLATIONS + 2
        assert client.post("/v1/memory/gc", json={"aggressive": "yes"}).status_code == 400
        rss_before = rss_bytes(node.proc.pid)
        result = client.post("/v1/memory/gc", json={}).json()
        rss_after = rss_bytes(node.proc.pid)
        print(f"memory gc: reported {result['agentMemoryFreedBytes']} freed; RSS {rss_before} -> {rss_after} "
              f"({rss_before - rss_after} dropped); {result}")
        # Only the ballast agents shrink: the counter is at its initial size and is left alone.
        assert sorted(r["id"] for r in result["restarted"]) == [f"ballast-{i}" for i in range(3)]
        freed = result["agentMemoryFreedBytes"]
        assert freed == 3 * INFLATIONS * 4 * 2**20
        drop = rss_before - rss_after
        assert 0.8 * freed <= drop <= 1.2 * freed + 4 * 2**20, (freed, drop)
        # Aggressive restarts the counter too, and its count survives (it exports the snapshot pair).
        cli = subprocess.run([sys.executable, "-m", "caxton_cli", "--api", node.api, "--token-file",
                              str(node.token_file), "memory", "gc", "--aggressive", "-o", "json"],
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr
        [aggressive] = json.loads(cli.stdout)
        kept = {r["id"]: r["keptState"] for r in aggressive["restarted"]}
        assert kept["counter"] is True and kept["ballast-0"] is False
        send(client, "counter", None)
        assert collect(client, "tester", 1)[0]["content"]["count"] == 3
        send(client, "ballast-0", None)  # a fresh ballast: its first inflation again
        assert collect(client, "tester", 1)[0]["content"]["pages"] == 65
