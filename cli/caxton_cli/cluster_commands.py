"""`caxton cluster members|status|performance|detect-partition|ping|watch|verify` in
direct mode, shaped like the runbook's output; a problem found exits 3."""

from __future__ import annotations

import argparse
import time
from typing import Any

from caxton_cli import client, declarative
from caxton_cli.client import add_connection_args, client_from_args
from caxton_cli.output import CommandError, emit


def _ago(seconds: float) -> str:
    if seconds < 1:
        return "now"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    return f"{seconds / 60:.0f}m ago"


def members(args: argparse.Namespace) -> None:
    result: list[dict[str, Any]] = client_from_args(args).call("GET", "/v1/cluster/members")
    emit(result, args.output, headers=("NODE-ID", "STATUS", "LAST-SEEN", "AGENTS", "VERSION", "ADDRESS"), rows=[
        (m["id"], m["state"], _ago(m.get("lastSeenSecondsAgo", 0.0)), m.get("agents", "-"), m.get("version", "-"),
         m.get("address", "-")) for m in result
    ])


def status(args: argparse.Namespace) -> None:
    s: dict[str, Any] = client_from_args(args).call("GET", "/v1/cluster/status")
    side = "majority partition" if s["members"]["alive"] >= s["quorum"] else "minority partition"
    lines = [
        f"Status: {s['status']} ({side})",
        f"Node: {s['node']} (version {s['version']})",
        f"Members: {s['members']['alive']} alive, {s['members']['suspect']} suspect, "
        f"{s['members']['failed']} failed (expected {s['expected']}, quorum {s['quorum']})",
        f"Operations: {'READ-ONLY' if s['readOnly'] else 'READ-WRITE'}",
    ]
    if "queuedWrites" in s:
        lines.append(f"Queued writes: {s['queuedWrites']}")
    emit(s, args.output, text="\n".join(lines))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = sub.add_parser("cluster", help="cluster membership and health").add_subparsers(
        dest="verb", required=True)
    for name, func, help_text in (("members", members, "members with state, last seen and agents"),
                                  ("status", status, "health, quorum and read-only state")):
        parser = cluster.add_parser(name, help=help_text)
        add_connection_args(parser)
        parser.set_defaults(func=func)
    register_more(cluster)


def performance(args: argparse.Namespace) -> None:
    p: dict[str, Any] = client_from_args(args).call("GET", "/v1/cluster/performance")
    rows = []
    for metric, key in (("Message routing P99", "routingP99Ms"), ("Gossip round trip", "gossipRttMs")):
        target, actual = p["targets"][key], p[key]
        rows.append((metric, f"{target}ms", f"{actual}ms", "✓ OK" if actual <= target else "✗ DEGRADED"))
    emit(p, args.output, headers=("METRIC", "TARGET", "ACTUAL", "STATUS"), rows=rows)


def detect_partition(args: argparse.Namespace) -> None:
    view: dict[str, Any] = client_from_args(args).call("GET", "/v1/cluster/partition")
    if not view["partitioned"]:
        emit(view, args.output, text=f"No partition: all {len(view['reachable'])} members reachable from "
             f"{view['node']}")
        return
    reachable_side = "majority" if view["side"] == "majority" else "minority"
    other_side = "minority" if reachable_side == "majority" else "majority (presumed)"
    emit(view, args.output, text=(
        "WARNING: Network partition detected\n"
        f"Partition A: [{', '.join(view['reachable'])}] ({reachable_side})\n"
        f"Partition B: [{', '.join(view['unreachable'])}] ({other_side})"
    ))
    raise CommandError("network partition detected", exit_code=3)


def ping(args: argparse.Namespace) -> None:
    result: dict[str, Any] = client_from_args(args).call("POST", f"/v1/cluster/ping/{args.node}")
    if result["reachable"]:
        emit(result, args.output, text=f"{args.node} ({result['state']}): reachable, {result['rttMs']}ms")
        return
    emit(result, args.output, text=f"{args.node} ({result['state']}): unreachable {result.get('error', '')}")
    raise CommandError(f"{args.node} is unreachable", exit_code=3)


def watch(args: argparse.Namespace) -> None:
    client = client_from_args(args)
    deadline = time.monotonic() + args.timeout
    seen = 0
    while time.monotonic() < deadline:
        for event in client.call("GET", "/v1/cluster/events", params={"since": seen}):
            seen = event["seq"]
            stamp = time.strftime("%H:%M:%S", time.localtime(event["ts"]))
            print(f"{stamp} [{event['level']}] {event['message']}", flush=True)
        time.sleep(args.interval)


def verify(args: argparse.Namespace) -> None:
    result: dict[str, Any] = client_from_args(args).call("GET", "/v1/cluster/verify")
    lines = [f"{member}: {', '.join(agents) or '-'}" for member, agents in result["agents"].items()]
    if result["consistent"]:
        emit(result, args.output, text="\n".join([*lines, f"OK: {result['members']} members consistent"]))
        return
    emit(result, args.output, text="\n".join([*lines, *(f"ERROR: {d}" for d in result["differences"])]))
    raise CommandError(f"{len(result['differences'])} difference(s) found", exit_code=3)


def register_more(cluster: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def command(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        parser = cluster.add_parser(name, help=help_text)
        add_connection_args(parser)
        parser.set_defaults(func=func)
        return parser

    command("performance", performance, "latencies against their targets")
    command("detect-partition", detect_partition, "is the cluster partitioned, and which side is this node on")
    command("ping", ping, "reach a member's API").add_argument("node")
    w = command("watch", watch, "follow membership and partition events")
    w.add_argument("--timeout", type=float, default=300.0, help="stop after this many seconds (default 300)")
    w.add_argument("--interval", type=float, default=1.0)
    command("verify", verify, "compare state across members and name every difference")
    if client.FRONT_DOOR == "kubectl":
        scale = command("scale", declarative.cluster_scale, "change the number of nodes (scale-in moves agents first)")
        scale.add_argument("--replicas", type=int, required=True)
        declarative.add_wait_flags(scale, 300.0)
