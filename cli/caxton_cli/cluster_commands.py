"""`caxton cluster members|status` in direct mode, shaped like the runbook's output."""

from __future__ import annotations

import argparse
from typing import Any

from caxton_cli.client import add_connection_args, client_from_args
from caxton_cli.output import emit


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
