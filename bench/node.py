"""Node benchmark: local routing, agent start and memory per agent, against issue targets.

    python -m bench.node [--messages 100000] [--agents 1000,10000] [--json out.json]

Runs in-process on one core (sched_setaffinity) with real Wasm agents built from
examples/agents. Prints a table and optionally writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

from caxton_node.agents.wasm import HostCalls, Limits
from caxton_node.config import load_config
from caxton_node.messages import Message
from caxton_node.node import Node
from caxton_node.system import rss_bytes

from bench.echo_load import burst, percentile, round_trips
from bench.report import Targets, report
from tests.support.agents import build_example_agents

TARGETS: Targets = {
    "routing_p99_us": ("<=", 100.0),
    "echo_msgs_per_s": (">=", 100_000.0),
    "route_only_msgs_per_s": (">=", 100_000.0),
    "agent_start_p99_ms": ("<=", 1.0),
    "rss_per_agent_kib_10000": ("<=", 64.0),
    "rss_per_agent_kib_1000": ("<=", 64.0),
}


def new_node(root: Path, name: str) -> Node:
    return Node(load_config({"node": {"id": name, "data_dir": str(root / name)},
                             "agents": {"queue_capacity": 1_000_000}}))


def bench_routing(root: Path, echo: bytes, messages: int) -> dict[str, float]:
    """Latency: one message at a time, accept -> echo agent -> reply in the mailbox.
    Throughput: a burst of `messages`, until every reply has arrived."""
    node = new_node(root, "routing")
    try:
        node.deploy("echo", echo)
        node.router.open_mailbox("bench")
        latencies = round_trips(node.router, min(messages, 20_000))
        throughput = burst(node.router, messages)
        # Route-only: the cost of accepting a message for a local recipient (no Wasm).
        node.router.open_mailbox("sink")
        sink = [Message("inform", "bench", "sink", "c", content=i) for i in range(messages)]
        started = time.perf_counter()
        for msg in sink:
            node.router.route(msg)
        route_elapsed = time.perf_counter() - started
        return {
            "routing_p50_us": percentile(latencies, 0.50) * 1e6,
            "routing_p99_us": percentile(latencies, 0.99) * 1e6,
            "echo_msgs_per_s": throughput,
            "route_only_msgs_per_s": messages / route_elapsed,
        }
    finally:
        node.close()


def bench_start(root: Path, echo: bytes, starts: int) -> dict[str, float]:
    node = new_node(root, "start")
    try:
        _, pre = node.engine.load(echo)
        host = HostCalls(send=lambda raw: 0, log=lambda level, text: None)
        limits = Limits(memory_bytes=1 << 20, deadline_seconds=0.01)
        times: list[float] = []
        for _ in range(starts):
            t0 = time.perf_counter()
            instance = node.engine.instantiate(pre, limits, host)
            times.append(time.perf_counter() - t0)
            instance.close()
        times.sort()
        return {"agent_start_p50_ms": percentile(times, 0.5) * 1e3,
                "agent_start_p99_ms": percentile(times, 0.99) * 1e3}
    finally:
        node.close()


def bench_rss(root: Path, echo: bytes, count: int) -> dict[str, float]:
    """RSS growth per idle agent; run in a fresh process so earlier phases do not blur it."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result: dict[str, float] = pool.apply(_rss_in_child, (root, echo, count))
    return result


def _rss_in_child(root: Path, echo: bytes, count: int) -> dict[str, float]:
    node = new_node(root, f"rss{count}")
    try:
        node.deploy("warmup", echo, limits={"memory": "1Mi"})
        before = rss_bytes()
        for i in range(count):
            node.deploy(f"a{i}", echo, limits={"memory": "1Mi"})
        after = rss_bytes()
        return {f"rss_per_agent_kib_{count}": (after - before) / count / 1024}
    finally:
        node.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--starts", type=int, default=2000)
    parser.add_argument("--agents", default="1000,10000", help="agent counts for the RSS figure")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    echo = build_example_agents()["echo"]
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        figures.update(bench_routing(root, echo, args.messages))
        figures.update(bench_start(root, echo, args.starts))
        for count in (int(c) for c in args.agents.split(",") if c):
            figures.update(bench_rss(root, echo, count))
    report(figures, TARGETS, args.json)

if __name__ == "__main__":
    main()
