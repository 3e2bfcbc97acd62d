"""`cluster verify --deep` on a real node: SQLite's integrity check of the state on disk and
every module against its sha256, each problem named, exit 3; a sound node passes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from tests.support.agents import deploy
from tests.support.nodes import NodeFactory, NodeProcess


def verify_deep(node: NodeProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "caxton_cli", "--api", node.api, "--token-file",
                           str(node.token_file), "cluster", "verify", "--deep"],
                          capture_output=True, text=True, timeout=60)


def test_deep_verify_names_a_damaged_module_and_a_damaged_database(node_factory: NodeFactory,
                                                                    agents: dict[str, bytes]) -> None:
    node = node_factory()
    with node.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        sha = client.get("/v1/agents/echo").json()["sha256"]
    sound = verify_deep(node)
    assert sound.returncode == 0, sound.stdout + sound.stderr
    assert "OK: 1 node(s) agree" in sound.stdout

    module = node.root / "data" / "modules" / f"{sha}.wasm"
    original = module.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01
    module.write_bytes(bytes(data))
    broken = verify_deep(node)
    assert broken.returncode == 3, broken.stdout + broken.stderr
    assert (f"ERROR: {node.node_id}: state corruption: modules/{sha}.wasm (agent echo): sha256 "
            in broken.stdout), broken.stdout
    assert f"deployed as {sha}" in broken.stdout

    module.write_bytes(original)
    # A graceful stop checkpoints the WAL into caxton.db; after the restart a page that nothing
    # writes (the conversation log's root: no traffic here) is read from the file itself.
    node.stop()
    node.start()
    db = node.root / "data" / "caxton.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    root, page_size = (conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'conversations'").fetchone()[0],
                       conn.execute("PRAGMA page_size").fetchone()[0])
    conn.close()
    with db.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * 12)  # the b-tree page header: no valid page type
    broken = verify_deep(node)
    assert broken.returncode == 3
    assert f"ERROR: {node.node_id}: state corruption: caxton.db: SQLite integrity check failed" in broken.stdout
