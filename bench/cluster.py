"""Cluster benchmark: failure detection and join convergence (SWIM vs HashiCorp Serf),
cross-node routing (Caxton's mTLS channel vs NATS request-reply).

    python -m bench.cluster [--sizes 3,10,50] [--messages 5000] [--json out.json]

Everything runs on loopback in this run's `127.<CAXTON_TEST_SLOT>.*` range. Each
comparison holds these equal (the table prints them too, see SETTINGS):

- Timing rules: our members run memberlist's LAN profile, as Serf does: probe 1 s,
  probe timeout 500 ms, gossip 200 ms to 3 members, suspicion 4 x log10(n) probe
  periods with Lifeguard's stretch (x6 until confirmed by 2 others), push-pull 30 s.
  Lifeguard's local-health awareness (Serf slows its probes when its node lags) has
  no counterpart here.
- Clocks: every member's socket is bound and the seed runs before either clock
  starts; join convergence starts when the others are told to join (a pipe command
  to our worker processes, a `join` RPC to each Serf agent), failure detection at
  the SIGKILL (ours: the victim stops without a goodbye).
- Polling: one request per member view on an open connection (a pipe per worker
  process for ours, Serf's RPC `members` on one TCP connection per agent), every 50 ms.
- Routing: mutual TLS between the two servers on both sides (Caxton's channel, NATS
  routes with `verify`), plaintext from the client to its server on both (Caxton's
  API has no TLS; NATS clients without TLS), the same payload (a full FIPA envelope),
  and Caxton measured twice: in-process through the router, and through its real
  ingress (HTTP POST /v1/messages with a bearer token, reply long-polled from the
  mailbox), which crosses as many hops as NATS's requester -> server -> route ->
  server -> responder.

Ratios are Caxton / reference (lower is better for times).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from caxton_node import pki
from caxton_node.config import load_config
from caxton_node.gossip.membership import Membership
from caxton_node.gossip.swim import SwimConfig
from caxton_node.gossip.transport import Keyring
from caxton_node.messages import Message
from caxton_node.node import Node
from caxton_node.server import start_clustering

from bench.echo_load import burst, percentile, round_trips
from bench.report import Targets, report
from bench.serf_rpc import SerfRPC
from bench.timing import wait_until
from tests.support.addresses import test_network
from tests.support.agents import build_example_agents
from tests.support.nodes import NodeFactory, NodeProcess, gossip_key, issue_node_cert

# memberlist's DefaultLANConfig, which `serf agent` uses (profile "lan").
SWIM = SwimConfig(gossip_interval=0.2, fanout=3, probe_interval=1.0, probe_timeout=0.5, suspicion_multiplier=4,
                  suspicion_max_multiplier=6, push_pull_interval=30.0)
POLL = 0.05
HTTP_IN_FLIGHT = 16
SETTINGS = [
    "SWIM and Serf: probe 1s, probe timeout 500ms, gossip 200ms x3, suspicion 4 x log10(n) x 1s "
    "with Lifeguard x6 until 2 confirmations, push-pull 30s (Serf's LAN profile; Lifeguard awareness: Serf only)",
    "clocks: sockets bound and seed running first; join from the join command, detection from the SIGKILL",
    f"polling: every {POLL * 1000:.0f} ms, one request per member view over open connections "
    "(pipes to our workers, Serf RPC `members`), no process forked",
    "routing: mTLS server-to-server on both (NATS routes verify), plaintext client-to-server on both, "
    "payload = one FIPA envelope on both; Caxton in-process (router) and via ingress (HTTP + bearer token)",
    f"throughput: all messages in flight at once (in-process, NATS), {HTTP_IN_FLIGHT} concurrent HTTP requests",
]
TARGETS: Targets = {
    "caxton_cross_node_p99_ms": ("<=", 1.0),
    "caxton_join_convergence_s_50": ("<=", 2.0),
}


def net(part: int) -> str:
    """This run's loopback prefix for one kind of member: 127.<slot>.<part>."""
    return f"{test_network()}.{part}"


# -- SWIM (ours) -----------------------------------------------------------------------------------
# Members run in a few worker processes (like Serf's separate agents, they must not share one GIL).

WORKERS = 4


def _swim_worker(indices: list[int], prefix: str, key: bytes, conn: Connection) -> None:
    members: dict[int, Membership] = {}
    keyring = Keyring([key])
    for i in indices:
        addr = (f"{prefix}.{i + 1}", 7946)
        members[i] = Membership(f"m{i}", bind=addr, advertise=addr, keyring=keyring, config=SWIM,
                                seeds=[] if i == 0 else [f"{prefix}.1:7946"], meta=dict)
    conn.send("bound")
    while True:
        command, arg = conn.recv()
        if command == "start":
            for i in arg:
                members[i].start()
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
        proc = ctx.Process(target=_swim_worker, args=(group, net(3), key, child), daemon=True)
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
            pipe.recv()  # every member's socket bound
        pipes[0].send(("start", [0]))  # the seed runs alone
        pipes[0].recv()
        started = time.monotonic()
        for pipe, group in zip(pipes, groups, strict=True):
            pipe.send(("start", [i for i in group if i != 0]))
        for pipe in pipes:
            pipe.recv()
        wait_until(lambda: all(c["alive"] == size for c in counts()), 120, poll=POLL, what="SWIM join")
        join = time.monotonic() - started
        victim = size - 1
        pipes[victim % WORKERS].send(("kill", victim))
        pipes[victim % WORKERS].recv()
        detection = wait_until(lambda: all(c["failed"] == 1 for c in counts()), 180, poll=POLL,
                               what="SWIM failure detection")
        return {f"caxton_join_convergence_s_{size}": join, f"caxton_failure_detection_s_{size}": detection}
    finally:
        ask("stop")
        for proc in procs:
            proc.join(timeout=5)


# -- Serf (reference) -------------------------------------------------------------------------------

def serf_cluster(size: int, key: str) -> dict[str, float]:
    procs: list[subprocess.Popen[bytes]] = []
    rpcs: list[SerfRPC] = []
    prefix = net(4)
    binds = [f"{prefix}.{i + 1}:7946" for i in range(size)]

    def connect(i: int) -> bool:
        try:
            rpcs.append(SerfRPC(f"{prefix}.{i + 1}:7373"))
            return True
        except OSError:
            return False

    try:
        procs += [subprocess.Popen(
            ["serf", "agent", f"-node=s{i}", f"-bind={binds[i]}", f"-rpc-addr={prefix}.{i + 1}:7373",
             f"-encrypt={key}", "-log-level=err"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(size)]
        for i in range(size):  # every agent bound and answering, each alone
            wait_until(lambda i=i: connect(i), 60, poll=POLL, what=f"serf agent s{i}")  # type: ignore[misc]

        def statuses() -> list[list[str]]:
            return [rpc.statuses() for rpc in rpcs]

        started = time.monotonic()
        pending = [(rpc, rpc.join_send([binds[0]])) for rpc in rpcs[1:]]
        for rpc, seq in pending:
            rpc.receive(seq, has_body=True)
        wait_until(lambda: all(s.count("alive") == size for s in statuses()), 120, poll=POLL, what="Serf join")
        join = time.monotonic() - started
        victim = procs.pop()
        rpcs.pop().close()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        detection = wait_until(lambda: all(s.count("failed") == 1 for s in statuses()), 180, poll=POLL,
                               what="Serf failure detection")
        return {f"serf_join_convergence_s_{size}": join, f"serf_failure_detection_s_{size}": detection}
    finally:
        for rpc in rpcs:
            rpc.close()
        for p in procs:
            p.kill()
            p.wait()


# -- cross-node routing -------------------------------------------------------------------------------

def envelope(i: int) -> Message:
    """The message every routing figure carries (NATS gets its encoded bytes as payload)."""
    return Message("request", "bench", "echo", "latency", content=i)


def caxton_routing(root: Path, messages: int) -> dict[str, float]:
    """The echo agent runs in a node process of its own (`home`, as NATS's responder has its own
    server). Callers: a node in this process driven through its router, and a node process
    (`gateway`) driven through its HTTP API as a client would."""
    ca_dir = root / "ca"
    key_file = gossip_key(root / "keys")
    factory = NodeFactory(root / "nodes", prefix=net(6))

    def member(name: str, seeds: list[str]) -> NodeProcess:
        node = factory(name, start=False)
        node.extra_config.update(
            coordination={"cluster": {"bind_addr": f"{node.address}:7946", "seeds": seeds, "bootstrap_expect": 3}},
            security={"cluster": {"gossip_key_file": str(key_file), "mtls": issue_node_cert(ca_dir, name)}},
            agents={"queue_capacity": 1_000_000},
        )
        node.start()
        return node

    home = member("home", [])
    seed = f"{home.address}:7946"
    gateway = member("gateway", [seed])
    caller_addr = f"{net(7)}.1"
    config = load_config({
        "node": {"id": "caller", "data_dir": str(root / "caller"), "api_addr": f"{caller_addr}:8080"},
        "coordination": {"cluster": {"bind_addr": f"{caller_addr}:7946", "seeds": [seed], "bootstrap_expect": 3}},
        "security": {"cluster": {"gossip_key_file": str(key_file), "mtls": issue_node_cert(ca_dir, "caller")}},
        "agents": {"queue_capacity": 1_000_000},
    })
    caller = Node(config)
    channel = start_clustering(config, caller, caller_addr, 8080)
    try:
        with home.client() as client:
            client.post("/v1/agents", json={"id": "echo", "wasm": base64.b64encode(
                build_example_agents()["echo"]).decode()}).raise_for_status()
        caller.router.open_mailbox("bench")
        forwarder = caller.forwarder
        assert forwarder is not None
        wait_until(lambda: forwarder.locate("echo") is not None, 60, what="the caller to locate echo")
        latencies = round_trips(caller.router, min(messages, 5000))
        throughput = burst(caller.router, messages)
        figures = {
            "caxton_cross_node_p50_ms": percentile(latencies, 0.5) * 1000,
            "caxton_cross_node_p99_ms": percentile(latencies, 0.99) * 1000,
            "caxton_cross_node_msgs_per_s": throughput,
        }
        figures.update(ingress_routing(gateway, messages))
        return figures
    finally:
        if caller.membership:
            caller.membership.stop(leave=False)
        if caller.forwarder:
            caller.forwarder.stop()
        if channel is not None:
            channel.stop()
        caller.close()
        factory.stop_all()


def ingress_routing(gateway: NodeProcess, messages: int) -> dict[str, float]:
    """Round trips and a burst through the gateway's HTTP API: POST /v1/messages, replies
    long-polled from GET /v1/mailboxes/bench."""
    headers = {"Authorization": f"Bearer {gateway.token_file.read_text().strip()}",
               "Content-Type": "application/json"}

    def body(i: int) -> bytes:
        return json.dumps({k: v for k, v in envelope(i).to_dict().items() if k not in ("id", "ts_ms")}).encode()

    with httpx.Client(base_url=gateway.api, headers=headers, timeout=30) as client:
        def round_trip(i: int) -> bool:
            client.post("/v1/messages", content=body(i)).raise_for_status()
            return bool(client.get("/v1/mailboxes/bench", params={"limit": 1, "wait": 5}).json())

        wait_until(lambda: round_trip(-1), 60, what="a reply through the gateway")
        latencies = []
        for i in range(min(messages, 5000)):
            started = time.perf_counter()
            if not round_trip(i):
                raise RuntimeError("no reply through the gateway within 5s")
            latencies.append(time.perf_counter() - started)
        latencies.sort()

    async def burst_http() -> float:
        limits = httpx.Limits(max_connections=HTTP_IN_FLIGHT + 1)
        async with httpx.AsyncClient(base_url=gateway.api, headers=headers, timeout=60, limits=limits) as client:
            gate = asyncio.Semaphore(HTTP_IN_FLIGHT)
            retries: list[int] = []

            async def post(i: int) -> None:
                async with gate:
                    for attempt in range(3):
                        try:
                            (await client.post("/v1/messages", content=body(i))).raise_for_status()
                            return
                        except (httpx.ReadError, httpx.RemoteProtocolError):
                            # A kept-alive connection the server closed as we reused it: send again
                            # (a duplicate reply is counted once, below).
                            retries.append(i)
                            if attempt == 2:
                                raise

            async def drain() -> None:
                answered: set[object] = set()  # the echo's content is the request, so its number
                while len(answered) < messages:
                    reply = await client.get("/v1/mailboxes/bench", params={"limit": 10_000, "wait": 1})
                    answered.update(m["content"].get("content") for m in reply.json() if isinstance(m["content"], dict))
                    if time.perf_counter() - started > 300:
                        raise RuntimeError(f"only {len(answered)}/{messages} replies through the gateway within 300s")

            started = time.perf_counter()
            await asyncio.gather(drain(), *(post(i) for i in range(messages)))
            elapsed = time.perf_counter() - started
            if retries:
                print(f"ingress burst: {len(retries)} POST(s) sent again after the connection closed")
            return messages / elapsed

    return {
        "caxton_ingress_p50_ms": percentile(latencies, 0.5) * 1000,
        "caxton_ingress_p99_ms": percentile(latencies, 0.99) * 1000,
        "caxton_ingress_msgs_per_s": asyncio.run(burst_http()),
    }


def nats_tls(root: Path, address: str) -> str:
    """A cluster `tls` block for the server on `address`: its certificate from one CA, peers verified."""
    ca_paths = (root / "nats-ca.crt", root / "nats-ca.key")
    if not ca_paths[0].exists():
        pki.new_ca("bench-nats-ca").write(*ca_paths)
    cert, key = root / f"nats-{address}.crt", root / f"nats-{address}.key"
    pki.issue(pki.KeyPair.read(*ca_paths), address, ip_addresses=(address,)).write(cert, key)
    return (f'tls {{ cert_file: "{cert}", key_file: "{key}", ca_file: "{ca_paths[0]}", verify: true, '
            f"timeout: 5 }}")


def nats_routing(root: Path, messages: int) -> dict[str, float]:
    import nats  # bench-only dependency (pip install -e '.[bench]')

    prefix = net(5)
    procs = []
    for i, other in ((1, 2), (2, 1)):
        conf = root / f"nats-{i}.conf"
        conf.write_text(
            f'listen: "{prefix}.{i}:4222"\n'
            f'cluster {{ name: bench, listen: "{prefix}.{i}:6222", routes: ["nats-route://{prefix}.{other}:6222"], '
            f"{nats_tls(root, f'{prefix}.{i}')} }}\n")
        procs.append(subprocess.Popen(["nats-server", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))

    async def run() -> dict[str, float]:
        responder = await nats.connect(f"nats://{prefix}.2:4222", max_reconnect_attempts=50)
        requester = await nats.connect(f"nats://{prefix}.1:4222", max_reconnect_attempts=50)

        async def echo(msg: Any) -> None:
            await msg.respond(msg.data)

        await responder.subscribe("echo", cb=echo)
        await responder.flush()
        for _ in range(600):  # until the route (TLS handshake first) has propagated the subscription
            try:
                await requester.request("echo", b"warm", timeout=0.2)
                break
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the NATS route did not carry a request within 30s")
        latencies = []
        for i in range(min(messages, 5000)):
            payload = envelope(i).encode()
            started = time.perf_counter()
            await requester.request("echo", payload, timeout=5)
            latencies.append(time.perf_counter() - started)
        latencies.sort()
        payloads = [envelope(i).encode() for i in range(messages)]
        started = time.perf_counter()
        await asyncio.gather(*(requester.request("echo", p, timeout=60) for p in payloads))
        elapsed = time.perf_counter() - started
        await requester.close()
        await responder.close()
        return {
            "nats_cross_node_p50_ms": percentile(latencies, 0.5) * 1000,
            "nats_cross_node_p99_ms": percentile(latencies, 0.99) * 1000,
            "nats_cross_node_msgs_per_s": messages / elapsed,
        }

    try:
        wait_until(lambda: all(_listening(f"{prefix}.{i}", 4222) for i in (1, 2)), 30, what="nats-server")
        return asyncio.run(run())
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _listening(host: str, port: int) -> bool:
    import socket

    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


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
    reference = not args.skip_reference
    if reference:
        missing = [tool for tool in ("serf", "nats-server") if shutil.which(tool) is None]
        if importlib.util.find_spec("nats") is None:
            missing.append("nats-py")
        if missing:
            parser.error(f"{', '.join(missing)} not found: apt-get install serf nats-server; "
                         "pip install -e '.[bench]' (or --skip-reference for Caxton's figures only)")
    for size in (int(s) for s in args.sizes.split(",") if s):
        figures.update(swim_cluster(size, swim_key))
        if reference:
            figures.update(serf_cluster(size, serf_key))
            for kind in ("join_convergence", "failure_detection"):
                ours, theirs = figures[f"caxton_{kind}_s_{size}"], figures[f"serf_{kind}_s_{size}"]
                figures[f"ratio_{kind}_{size}"] = ours / theirs
    figures["payload_bytes"] = float(len(envelope(0).encode()))
    with tempfile.TemporaryDirectory() as tmp:
        figures.update(caxton_routing(Path(tmp), args.messages))
        if reference:
            figures.update(nats_routing(Path(tmp), args.messages))
            for kind, ours_name, theirs_name in (
                ("p99", "caxton_cross_node_p99_ms", "nats_cross_node_p99_ms"),
                ("msgs_per_s", "caxton_cross_node_msgs_per_s", "nats_cross_node_msgs_per_s"),
                ("ingress_p99", "caxton_ingress_p99_ms", "nats_cross_node_p99_ms"),
                ("ingress_msgs_per_s", "caxton_ingress_msgs_per_s", "nats_cross_node_msgs_per_s"),
            ):
                figures[f"ratio_cross_node_{kind}"] = figures[ours_name] / figures[theirs_name]
    report(figures, TARGETS, args.json, settings=SETTINGS)


if __name__ == "__main__":
    main()
