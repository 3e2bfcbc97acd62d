"""Cluster benchmark: failure detection and join convergence (SWIM vs HashiCorp Serf),
cross-node routing (Caxton's mTLS channel vs NATS request-reply).

    python -m bench.cluster [--sizes 3,10,50] [--messages 5000] [--json out.json]

Everything runs on loopback: Caxton members are Membership instances in this
process on 127.0.3.N, Serf agents are `serf agent` processes on 127.0.4.N with
the same probe settings (Serf's LAN defaults equal ours), NATS is two clustered
`nats-server` processes. Ratios are Caxton / reference (lower is better for times).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from caxton_node.config import load_config
from caxton_node.gossip.membership import Membership
from caxton_node.gossip.swim import SwimConfig
from caxton_node.gossip.transport import Keyring
from caxton_node.node import Node
from caxton_node.server import start_clustering

from bench.echo_load import burst, percentile, round_trips
from bench.report import Targets, report
from bench.timing import wait_until
from tests.support.agents import build_example_agents
from tests.support.nodes import NodeFactory, gossip_key, issue_node_cert

SWIM = SwimConfig(gossip_interval=0.2, fanout=3, probe_interval=1.0, probe_timeout=0.5, suspicion_multiplier=4)
TARGETS: Targets = {
    "caxton_cross_node_p99_ms": ("<=", 1.0),
    "caxton_join_convergence_s_50": ("<=", 2.0),
}


# -- SWIM (ours) -----------------------------------------------------------------------------------
# Members run in a few worker processes (like Serf's separate agents, they must not share one GIL).

WORKERS = 4


def _swim_worker(indices: list[int], size: int, key: bytes, conn: Connection) -> None:
    members: dict[int, Membership] = {}
    keyring = Keyring([key])
    for i in indices:
        addr = (f"127.0.3.{i + 1}", 7946)
        members[i] = Membership(f"m{i}", bind=addr, advertise=addr, keyring=keyring, config=SWIM,
                                seeds=[] if i == 0 else ["127.0.3.1:7946"], meta=dict)
    conn.send("bound")
    while True:
        command, arg = conn.recv()
        if command == "start":
            for m in members.values():
                m.start()
            conn.send("started")
        elif command == "counts":
            conn.send([m.counts() for m in members.values()])
        elif command == "kill":
            members.pop(arg).stop(leave=False)  # a crash: no goodbye
            conn.send("killed")
        elif command == "stop":
            for m in members.values():
                m.stop(leave=False)
            conn.send("stopped")
            return


def swim_cluster(size: int, key: bytes) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    groups = [[i for i in range(size) if i % WORKERS == w] for w in range(min(WORKERS, size))]
    pipes, procs = [], []
    for group in groups:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_swim_worker, args=(group, size, key, child), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)

    def ask(command: str, arg: object = None) -> list[object]:
        for pipe in pipes:
            pipe.send((command, arg))
        return [pipe.recv() for pipe in pipes]

    def counts() -> list[dict[str, int]]:
        return [c for group in ask("counts") for c in group]  # type: ignore[attr-defined]

    try:
        for pipe in pipes:
            pipe.recv()  # sockets bound
        pipes[0].send(("start", None))
        pipes[0].recv()  # the seed (m0) first
        started = time.monotonic()
        for pipe in pipes[1:]:
            pipe.send(("start", None))
        for pipe in pipes[1:]:
            pipe.recv()
        wait_until(lambda: all(c["alive"] == size for c in counts()), 60)
        join = time.monotonic() - started
        victim = size - 1
        pipes[victim % WORKERS].send(("kill", victim))
        pipes[victim % WORKERS].recv()
        detection = wait_until(lambda: all(c["failed"] == 1 for c in counts()), 120)
        return {f"caxton_join_convergence_s_{size}": join, f"caxton_failure_detection_s_{size}": detection}
    finally:
        ask("stop")
        for proc in procs:
            proc.join(timeout=5)


# -- Serf (reference) -------------------------------------------------------------------------------

def serf_count(rpc: str, status: str) -> int:
    """Members `rpc`'s agent sees in `status` (serf prints an empty line for none)."""
    out = subprocess.run(["serf", "members", f"-rpc-addr={rpc}", f"-status={status}"], capture_output=True,
                         text=True)
    return sum(1 for line in out.stdout.splitlines() if line.strip()) if out.returncode == 0 else 0


def serf_alive(rpc: str) -> int:
    return serf_count(rpc, "alive")


def serf_failed(rpc: str) -> int:
    return serf_count(rpc, "failed")


def serf_cluster(size: int, key: str) -> dict[str, float]:
    procs: list[subprocess.Popen[bytes]] = []
    rpcs = [f"127.0.4.{i + 1}:7373" for i in range(size)]

    def agent(i: int, join: bool) -> subprocess.Popen[bytes]:
        argv = ["serf", "agent", f"-node=s{i}", f"-bind=127.0.4.{i + 1}:7946", f"-rpc-addr={rpcs[i]}",
                f"-encrypt={key}", "-log-level=err"]
        if join:
            argv.append("-join=127.0.4.1:7946")
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    try:
        procs.append(agent(0, False))
        wait_until(lambda: serf_alive(rpcs[0]) == 1, 20)
        started = time.monotonic()
        procs += [agent(i, True) for i in range(1, size)]
        with ThreadPoolExecutor(16) as pool:
            wait_until(lambda: all(n == size for n in pool.map(serf_alive, rpcs)), 120)
            join = time.monotonic() - started
            victim = procs.pop()
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            live = rpcs[:-1]
            detection = wait_until(lambda: all(n == 1 for n in pool.map(serf_failed, live)), 120)
        return {f"serf_join_convergence_s_{size}": join, f"serf_failure_detection_s_{size}": detection}
    finally:
        for p in procs:
            p.kill()
            p.wait()


# -- cross-node routing -------------------------------------------------------------------------------

def caxton_routing(root: Path, messages: int) -> dict[str, float]:
    """The echo agent runs in a node process of its own (as NATS's responder has its own
    server); the client side is a node in this process, driven through its router."""
    ca_dir = root / "ca"
    key_file = gossip_key(root / "keys")
    factory = NodeFactory(root / "nodes", prefix="127.0.6")
    home = factory("home", start=False)
    home.extra_config.update(
        coordination={"cluster": {"bind_addr": f"{home.address}:7946", "bootstrap_expect": 2}},
        security={"cluster": {"gossip_key_file": str(key_file), "mtls": issue_node_cert(ca_dir, "home")}},
    )
    home.start()
    config = load_config({
        "node": {"id": "caller", "data_dir": str(root / "caller"), "api_addr": "127.0.3.200:8080"},
        "coordination": {"cluster": {"bind_addr": "127.0.3.200:7946", "seeds": [f"{home.address}:7946"],
                                     "bootstrap_expect": 2}},
        "security": {"cluster": {"gossip_key_file": str(key_file), "mtls": issue_node_cert(ca_dir, "caller")}},
        "agents": {"queue_capacity": 1_000_000},
    })
    caller = Node(config)
    channel = start_clustering(config, caller, "127.0.3.200", 8080)
    try:
        with home.client() as client:
            client.post("/v1/agents", json={"id": "echo", "wasm": base64.b64encode(
                build_example_agents()["echo"]).decode()}).raise_for_status()
        caller.router.open_mailbox("bench")
        forwarder = caller.forwarder
        assert forwarder is not None
        wait_until(lambda: forwarder.locate("echo") is not None, 30)
        latencies = round_trips(caller.router, min(messages, 5000))
        throughput = burst(caller.router, messages)
        return {
            "caxton_cross_node_p50_ms": percentile(latencies, 0.5) * 1000,
            "caxton_cross_node_p99_ms": percentile(latencies, 0.99) * 1000,
            "caxton_cross_node_msgs_per_s": throughput,
        }
    finally:
        if caller.membership:
            caller.membership.stop(leave=False)
        if caller.forwarder:
            caller.forwarder.stop()
        if channel is not None:
            channel.stop()
        caller.close()
        factory.stop_all()


def nats_routing(root: Path, messages: int) -> dict[str, float]:
    import nats  # bench-only dependency (pip install nats-py)

    procs = []
    for i, other in ((1, 2), (2, 1)):
        procs.append(subprocess.Popen([
            "nats-server", "-a", f"127.0.5.{i}", "-p", "4222", "--cluster", f"nats://127.0.5.{i}:6222",
            "--routes", f"nats://127.0.5.{other}:6222", "--cluster_name", "bench",
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    async def run() -> dict[str, float]:
        responder = await nats.connect("nats://127.0.5.2:4222")
        requester = await nats.connect("nats://127.0.5.1:4222")

        async def echo(msg: Any) -> None:
            await msg.respond(msg.data)

        await responder.subscribe("echo", cb=echo)
        await responder.flush()
        for _ in range(100):  # until the route has propagated the subscription
            try:
                await requester.request("echo", b"warm", timeout=0.2)
                break
            except nats.errors.TimeoutError:
                await asyncio.sleep(0.05)
        latencies = []
        for i in range(min(messages, 5000)):
            started = time.perf_counter()
            await requester.request("echo", str(i).encode(), timeout=5)
            latencies.append(time.perf_counter() - started)
        latencies.sort()
        started = time.perf_counter()
        await asyncio.gather(*(requester.request("echo", str(i).encode(), timeout=30) for i in range(messages)))
        elapsed = time.perf_counter() - started
        await requester.close()
        await responder.close()
        return {
            "nats_cross_node_p50_ms": percentile(latencies, 0.5) * 1000,
            "nats_cross_node_p99_ms": percentile(latencies, 0.99) * 1000,
            "nats_cross_node_msgs_per_s": messages / elapsed,
        }

    try:
        time.sleep(1.0)
        return asyncio.run(run())
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,10,50")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-reference", action="store_true", help="run Caxton only (no Serf, no NATS)")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    swim_key = os.urandom(32)
    serf_key = base64.b64encode(os.urandom(32)).decode()
    have_serf = shutil.which("serf") is not None and not args.skip_reference
    for size in (int(s) for s in args.sizes.split(",") if s):
        figures.update(swim_cluster(size, swim_key))
        if have_serf:
            figures.update(serf_cluster(size, serf_key))
            for kind in ("join_convergence", "failure_detection"):
                ours, theirs = figures[f"caxton_{kind}_s_{size}"], figures[f"serf_{kind}_s_{size}"]
                figures[f"ratio_{kind}_{size}"] = ours / theirs if theirs else 0.0
    with tempfile.TemporaryDirectory() as tmp:
        figures.update(caxton_routing(Path(tmp), args.messages))
        if shutil.which("nats-server") and not args.skip_reference:
            try:
                figures.update(nats_routing(Path(tmp), args.messages))
                for ratio_name, ours_name, theirs_name in (
                    ("ratio_cross_node_p99", "caxton_cross_node_p99_ms", "nats_cross_node_p99_ms"),
                    ("ratio_cross_node_msgs_per_s", "caxton_cross_node_msgs_per_s", "nats_cross_node_msgs_per_s"),
                ):
                    figures[ratio_name] = figures[ours_name] / figures[theirs_name]
            except ImportError:
                print("nats-py not installed: pip install nats-py for the NATS comparison")
    report(figures, TARGETS, args.json)


if __name__ == "__main__":
    main()
