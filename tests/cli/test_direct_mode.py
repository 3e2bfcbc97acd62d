"""`caxton ...` against a node's API: tables, -o json|yaml, readable errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.nodes import NodeFactory, NodeProcess
from tests.support.waiting import wait_for


def caxton(node: NodeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAXTON_API": node.api, "CAXTON_TOKEN_FILE": str(node.token_file)}
    env.pop("CAXTON_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "caxton_cli", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_agents_deploy_list_suspend_resume(node_factory: NodeFactory, agents: dict[str, bytes],
                                           tmp_path: Path) -> None:
    node = node_factory()
    module = tmp_path / "echo.wasm"
    module.write_bytes(agents["echo"])
    deployed = caxton(node, "agents", "deploy", str(module), "--id", "echo", "--priority", "low")
    assert deployed.returncode == 0, deployed.stderr
    table = caxton(node, "agents", "list")
    assert table.stdout.splitlines()[0].split()[:3] == ["AGENT-ID", "STATE", "PRIORITY"]
    assert table.stdout.splitlines()[1].split()[:3] == ["echo", "running", "low"]
    as_json = json.loads(caxton(node, "agents", "list", "-o", "json").stdout)
    assert as_json[0]["id"] == "echo"
    as_yaml = yaml.safe_load(caxton(node, "agents", "list", "-o", "yaml").stdout)
    assert as_yaml[0]["sha256"] == as_json[0]["sha256"]

    suspended = caxton(node, "agents", "suspend", "--priority", "low", "-o", "json")
    assert json.loads(suspended.stdout) == {"suspended": ["echo"]}
    # The runbook's singular spelling works too.
    assert caxton(node, "agent", "resume", "echo").returncode == 0
    assert json.loads(caxton(node, "agents", "list", "-o", "json").stdout)[0]["state"] == "running"


def test_send_trace_queue_memory(node_factory: NodeFactory, agents: dict[str, bytes], tmp_path: Path) -> None:
    node = node_factory()
    (tmp_path / "counter.wasm").write_bytes(agents["counter"])
    assert caxton(node, "agents", "deploy", str(tmp_path / "counter.wasm"), "--id", "counter").returncode == 0
    sent = caxton(node, "send", "--to", "counter", "--conversation-id", "abc-123", "-o", "json")
    assert sent.returncode == 0, sent.stderr

    def traced() -> list[str] | None:
        result = caxton(node, "trace", "--conversation-id", "abc-123")
        lines = result.stdout.splitlines()
        return lines if result.returncode == 0 and len(lines) == 3 else None

    lines = wait_for(traced, timeout=20, what="request and reply in the trace")
    assert lines[1].split()[1:4] == ["request", "cli", "counter"]
    assert lines[2].split()[1:4] == ["inform", "counter", "cli"]
    stats = json.loads(caxton(node, "queue", "stats", "-o", "json").stdout)
    assert stats["depth"] == 0
    memory = json.loads(caxton(node, "memory", "stats", "-o", "json").stdout)
    assert memory["agents"] == 1 and memory["agentMemoryBytes"] > 0


def test_emergency_stop_and_circuit_breaker(node_factory: NodeFactory, agents: dict[str, bytes],
                                            tmp_path: Path) -> None:
    node = node_factory(node={"dump_dir": str(tmp_path / "dumps")})
    (tmp_path / "echo.wasm").write_bytes(agents["echo"])
    caxton(node, "agents", "deploy", str(tmp_path / "echo.wasm"), "--id", "echo")
    breaker = caxton(node, "circuit-breaker", "activate", "--all")
    assert "ACTIVE" in breaker.stdout
    refused = caxton(node, "send", "--to", "echo")
    assert refused.returncode == 1 and refused.stderr.startswith("error: circuit_open")
    assert caxton(node, "circuit-breaker", "reset").returncode == 0
    dump = tmp_path / "dumps" / "emergency"
    stopped = caxton(node, "emergency", "stop", "--preserve-state", "--dump-to", str(dump), "-o", "json")
    assert json.loads(stopped.stdout)["suspended"] == ["echo"]
    assert json.loads((dump / "manifest.json").read_text())["agents"] == ["echo"]
    assert (dump / "caxton.db").stat().st_size > 0


def test_errors_are_one_line_with_meaningful_exit_codes(node_factory: NodeFactory) -> None:
    node = node_factory()
    missing = caxton(node, "agents", "suspend", "nobody")
    assert missing.returncode == 4
    assert missing.stderr.strip() == "error: agent_not_found: no agent nobody on node " + node.node_id
    # The client's own token file holds another token (the node's file is the node's: it re-reads it live).
    wrong = node.root / "wrong-token"
    wrong.write_text("not-the-token-at-all")
    denied = caxton(node, "agents", "list", "--token-file", str(wrong))
    assert denied.returncode == 1 and "unauthorized" in denied.stderr
    node.stop()
    down = caxton(node, "agents", "list")
    assert down.returncode == 2 and "cannot reach the node API" in down.stderr


def test_server_start_refuses_a_bad_config_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("coordination:\n  cluster:\n    gossip_intervall: 1s\n")
    result = subprocess.run([sys.executable, "-m", "caxton_cli", "server", "start", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: invalid configuration: coordination.cluster.gossip_intervall: unknown key"
    )
    config.write_text(f"node: {{data_dir: {tmp_path / 'data'}}}\ncoordination:\n  cluster:\n    seeds: [other:7946]\n")
    result = subprocess.run([sys.executable, "-m", "caxton_cli", "server", "start", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "clustering needs security.cluster.gossip_key_file" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before touching anything


def test_emergency_stop_cluster_without_a_value_stops_every_member(node_factory: NodeFactory,
                                                                  agents: dict[str, bytes], tmp_path: Path) -> None:
    """The runbook's bare `emergency stop --cluster`: on a lone node, that node."""
    node = node_factory()
    (tmp_path / "echo.wasm").write_bytes(agents["echo"])
    caxton(node, "agents", "deploy", str(tmp_path / "echo.wasm"), "--id", "echo")
    stopped = caxton(node, "emergency", "stop", "--cluster", "-o", "json")
    assert stopped.returncode == 0, stopped.stderr
    assert [r["suspended"] for r in json.loads(stopped.stdout)] == [["echo"]]
