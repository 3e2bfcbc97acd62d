"""`cluster shed-load`: a node suspends agents, low priority first and the busiest first within a
priority, until the share of its measured message rate asked for is gone; resuming by priority
undoes it. The rate drop is measured by the test from the agents' handled counts."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import httpx

from tests.support.load import MessageLoad
from tests.support.nodes import NodeFactory
from tests.support.waiting import wait_for

AGENTS = {"low-busy": "low", "low-idle": "low", "normal-a": "normal", "normal-b": "normal", "high-a": "high"}


def handled_per_second(client: httpx.Client, seconds: float) -> float:
    def total() -> int:
        return sum(a["handled"] for a in client.get("/v1/agents").json())

    before, started = total(), time.monotonic()
    time.sleep(seconds)
    return (total() - before) / (time.monotonic() - started)


def test_shed_load_suspends_low_priority_first_and_the_rate_drops(node_factory: NodeFactory,
                                                                  agents: dict[str, bytes]) -> None:
    node = node_factory()
    wasm = base64.b64encode(agents["echo"]).decode()
    with node.client() as client:
        for agent_id, priority in AGENTS.items():
            assert client.post("/v1/agents", json={"id": agent_id, "wasm": wasm, "priority": priority}).status_code \
                == 201
        # low-idle gets nothing: the load covers the others, low-busy twice (it appears twice in the rotation).
        busy = ["low-busy", "normal-a", "low-busy", "normal-b", "high-a"]
        load = MessageLoad(lambda: {node.node_id: node.api}, node.token_file.read_text().strip(), busy,
                           rate=100, reply_timeout=30.0).start()
        try:
            wait_for(lambda: (client.get("/v1/load").json()["messageRate"] or 0) > 50, timeout=60,
                     what="the node to measure its rate")
            time.sleep(2)
            before = handled_per_second(client, 3)
            shed = client.post("/v1/shed-load", json={"percentage": 50})
            assert shed.status_code == 200, shed.text
            result = shed.json()
            after = handled_per_second(client, 3)
        finally:
            load.stop(drain_timeout=0)
        suspended = [a["id"] for a in result["suspended"]]
        # low-busy (40% of the traffic) first, then low-idle (no traffic: not enough), then the busier normal.
        assert suspended[:2] == ["low-busy", "low-idle"] and suspended[2] in ("normal-a", "normal-b")
        assert "high-a" not in suspended and result["shed"] >= result["goal"] > 0
        states = {a["id"]: a["state"] for a in client.get("/v1/agents").json()}
        assert {a for a, s in states.items() if s == "suspended"} == set(suspended)
        print(f"shed-load 50%: {before:.1f} -> {after:.1f} handled/s; {result}")
        assert after <= before * 0.6, (before, after)  # the measured rate fell by about half
        cli = subprocess.run([sys.executable, "-m", "caxton_cli", "--api", node.api, "--token-file",
                              str(node.token_file), "agents", "resume", "--priority", "low", "-o", "json"],
                             capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr
        assert sorted(json.loads(cli.stdout)["suspended"]) == ["low-busy", "low-idle"]
        states = {a["id"]: a["state"] for a in client.get("/v1/agents").json()}
        assert states["low-busy"] == states["low-idle"] == "running"
        assert client.post("/v1/shed-load", json={"percentage": 0}).status_code == 400
