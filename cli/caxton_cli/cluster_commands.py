"""`cluster members|status|performance|detect-partition|ping|watch|verify`, shaped like
the runbook's output; a problem found exits 3. In plugin mode `verify` asks every node
(each one's view of the cluster), and `members`/`status` can be watched."""

from __future__ import annotations

import argparse
import time
from typing import Any

from caxton_cli.client import ask_every_node, client_from_args
from caxton_cli.errors import CommandError
from caxton_cli.output import View, emit, table
from caxton_cli.watching import show


def _ago(seconds: float) -> str:
    if seconds < 1:
        return "now"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    return f"{seconds / 60:.0f}m ago"


def members(args: argparse.Namespace) -> None:
    client = client_from_args(args)

    def look() -> View:
        result: list[dict[str, Any]] = client.call("GET", "/v1/cluster/members")
        return View(result, headers=("NODE-ID", "STATUS", "LAST-SEEN", "AGENTS", "VERSION", "ADDRESS"), rows=[
            (m["id"], m["state"], _ago(m.get("lastSeenSecondsAgo", 0.0)), m.get("agents", "-"),
             m.get("version", "-"), m.get("address", "-")) for m in result
        ], changes=[(m["id"], m["state"], m.get("agents"), m.get("version")) for m in result])

    show(args, look)


def status(args: argparse.Namespace) -> None:
    client = client_from_args(args)

    def look() -> View:
        s: dict[str, Any] = client.call("GET", "/v1/cluster/status")
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
        return View(s, text="\n".join(lines))

    show(args, look)


def performance(args: argparse.Namespace) -> None:
    """Each figure against its target; "no data" when nothing was measured (a single node has no
    gossip, a node that routed nothing has no latency), never a pass."""
    p: dict[str, Any] = client_from_args(args).call("GET", "/v1/cluster/performance")
    rows = []
    for metric, key, samples, unit in (
        ("Message routing P99", "routingP99Ms", "messagesObserved", "messages"),
        ("Gossip round trip P50", "gossipRttP50Ms", "gossipProbesObserved", "probes"),
        ("Gossip round trip P99", "gossipRttP99Ms", "gossipProbesObserved", "probes"),
    ):
        target = p["targets"][key]
        actual = p.get(key)
        if actual is None or not p.get(samples):
            rows.append((metric, f"{target}ms", "-", f"no data (0 {unit})"))
            continue
        verdict = "✓ OK" if actual <= target else "✗ DEGRADED"
        rows.append((metric, f"{target}ms", f"{actual}ms", f"{verdict} ({p[samples]} {unit})"))
    emit(p, args.output, headers=("METRIC", "TARGET", "ACTUAL", "STATUS"), rows=rows)


def detect_partition(args: argparse.Namespace) -> None:
    if args.resolve_strategy:  # every node's view, then the plan (manual) or the resolution (auto)
        from caxton_cli.incident import resolve_strategy

        resolve_strategy(args)
        return
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
    member = args.member
    result: dict[str, Any] = client_from_args(args).call("POST", f"/v1/cluster/ping/{member}")
    if result["reachable"]:
        emit(result, args.output, text=f"{member} ({result['state']}): reachable, {result['rttMs']}ms")
        return
    emit(result, args.output, text=f"{member} ({result['state']}): unreachable {result.get('error', '')}")
    raise CommandError(f"{member} is unreachable", exit_code=3)


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


def _deep(args: argparse.Namespace) -> list[str]:
    """--deep: every node's state on disk (SQLite's integrity check, modules against their sha256),
    and one module per agent id across the members."""
    problems: list[str] = []
    shas: dict[str, set[str]] = {}
    for a in ask_every_node(args, lambda client: client.call("GET", "/v1/state/integrity", timeout=60)):
        if a.error is not None:
            problems.append(f"{a.node}: state not checked: {a.error}")
            continue
        problems.extend(f"{a.result['node']}: state corruption: {p}" for p in a.result["problems"])
        for agent, sha in a.result["modules"].items():
            shas.setdefault(agent, set()).add(sha)
    problems.extend(f"agent {agent} runs different modules on different nodes: {', '.join(sorted(found))}"
                    for agent, found in sorted(shas.items()) if len(found) > 1)
    return problems


def verify(args: argparse.Namespace) -> None:
    """Every node's own comparison (in plugin mode, all at once): a node on the other side
    of a partition, or one that cannot see a peer, disagrees, and that is what to find."""
    answers = ask_every_node(args, lambda client: client.call("GET", "/v1/cluster/verify"))
    rows: list[tuple[Any, ...]] = []
    problems: list[str] = []
    for a in answers:
        if a.error is not None:
            rows.append((a.node, "-", "-", "UNREACHABLE"))
            problems.append(f"{a.node}: {a.error}")
            continue
        r = a.result
        total = sum(len(agents) for agents in r["agents"].values())
        rows.append((r["node"], r["members"], total, "OK" if r["consistent"] else f"{len(r['differences'])} ERROR(S)"))
        problems.extend(f"{r['node']}: {d}" for d in r["differences"])
    placement: dict[str, list[str]] = {}
    for a in answers:
        for member, agents in (a.result or {}).get("agents", {}).items():
            placement.setdefault(member, agents)
    if getattr(args, "deep", False):
        problems.extend(_deep(args))
    data = {"consistent": not problems, "nodes": [a.result if a.error is None else {"node": a.node, "error": str(
        a.error)} for a in answers], "differences": problems}
    lines = [table(("NODE", "MEMBERS", "AGENTS", "VERIFY"), rows), "",
             *(f"{member}: {', '.join(agents) or 'no agents'}" for member, agents in sorted(placement.items()))]
    if not problems:
        emit(data, args.output, text="\n".join([*lines, f"OK: {len(answers)} node(s) agree, every member consistent"]))
        return
    emit(data, args.output, text="\n".join([*lines, *(f"ERROR: {p}" for p in problems)]))
    raise CommandError(f"{len(problems)} difference(s) found", exit_code=3)
