"""A node that cannot start says why in one line, exits 2, and leaves nothing behind."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.node.test_agents import collect, deploy, send
from tests.support.nodes import NodeFactory, NodeProcess


def start_failing(node: NodeProcess) -> subprocess.CompletedProcess[str]:
    """Runs `caxton server start` for a node expected to refuse to start (bounded by a timeout)."""
    node.write_config()
    return subprocess.run([sys.executable, "-m", "caxton_cli", "server", "start", "--config", str(node.config_file)],
                          capture_output=True, text=True, timeout=120)


def assert_one_line_exit_2(result: subprocess.CompletedProcess[str], says: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert says in lines[0], lines[0]
    assert "serving API" not in result.stderr + result.stdout


@contextmanager
def listening(address: str, port: int) -> Iterator[None]:
    sock = socket.socket()
    try:
        sock.bind((address, port))
        sock.listen()
        yield
    finally:
        sock.close()


def test_a_busy_api_port(node_factory: NodeFactory) -> None:
    node = node_factory(start=False)
    with listening(node.address, 8080):
        result = start_failing(node)
    assert_one_line_exit_2(result, f"cannot bind node.api_addr {node.address}:8080: Address already in use")
    assert not (node.root / "data").exists()


def test_a_busy_metrics_port(node_factory: NodeFactory) -> None:
    node = node_factory(start=False)
    with listening(node.address, 9090):
        result = start_failing(node)
    assert_one_line_exit_2(result, f"cannot bind node.metrics_addr {node.address}:9090")
    assert not (node.root / "data").exists()


def test_a_data_dir_that_is_a_file(node_factory: NodeFactory) -> None:
    node = node_factory(start=False)
    node.root.mkdir(parents=True)
    (node.root / "data").write_text("not a directory")
    result = start_failing(node)
    assert_one_line_exit_2(result, "exists and is not a directory")
    assert (node.root / "data").read_text() == "not a directory"


def test_a_bad_port_number(node_factory: NodeFactory) -> None:
    for bad in ("99999", "http", "0"):
        node = node_factory(start=False, node={"api_addr": f"127.0.0.1:{bad}"})
        result = start_failing(node)
        assert_one_line_exit_2(result, "node.api_addr")
        assert "port from 1 to 65535" in result.stderr
        assert not (node.root / "data").exists()


def test_a_second_node_on_the_same_data_dir_refuses_and_delivers_nothing(
    node_factory: NodeFactory, agents: dict[str, bytes],
) -> None:
    first = node_factory()
    with first.client() as client:
        assert deploy(client, "echo", agents["echo"]).status_code == 201
        client.post("/v1/agents/echo/suspend").raise_for_status()
        for i in range(5):
            send(client, "echo", i)
        client.get("/v1/mailboxes/tester")
    second = node_factory(start=False, node={"data_dir": str(first.root / "data")})
    result = start_failing(second)
    assert first.proc is not None
    assert_one_line_exit_2(result, f"is in use by another node (pid {first.proc.pid} on ")
    try:
        httpx.get(f"{second.api}/healthz", timeout=2)
        raise AssertionError("the second node serves")
    except httpx.HTTPError:
        pass
    with first.client() as client:
        assert client.get("/v1/queue").json()["depth"] == 5  # still queued here, not taken by the second
        client.post("/v1/agents/echo/resume").raise_for_status()
        assert [r["content"]["content"] for r in collect(client, "tester", 5)] == [0, 1, 2, 3, 4]
    # Once the first has stopped, its data directory is free again.
    first.stop()
    second.start()
    with second.client() as client:
        assert [a["id"] for a in client.get("/v1/agents").json()] == ["echo"]
