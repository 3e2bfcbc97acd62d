"""`caxton cluster verify`: read every member's own view of the cluster and compare
them, in both directions, naming every difference.

A member's view (`local_view`, served at /v1/cluster/view) is what it runs (agents
and client mailboxes), which members it sees up, the version it believes each
runs, and its copy of the gossip directory with a digest. `compare` is pure: the
directory entries nobody runs (they misroute messages), running agents a
directory lacks, members that disagree on who is in the cluster, on versions, or
whose directory digests differ, members that cannot be read, and an agent on two
nodes.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from caxton_node.node import Node

UP = ("alive", "suspect")


def directory_digest(directory: dict[str, list[str]]) -> str:
    canonical = json.dumps({k: sorted(v) for k, v in sorted(directory.items())}, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def local_view(node: Node) -> dict[str, Any]:
    """This node's view: what it runs, whom it sees, and its copy of the directory."""
    router = node.router
    view: dict[str, Any] = {
        "node": node.id, "version": node.version,
        "agents": sorted(router.agents), "mailboxes": sorted(router.mailboxes),
        "members": {}, "directory": {}, "published": [], "directoryComplete": True,
    }
    if node.membership is None:
        view["members"] = {node.id: {"state": "alive", "version": node.version, "api": ""}}
        return view
    for member in node.membership.snapshot():
        state = member.state.name.lower()
        view["members"][member.id] = {"state": state, "version": str(member.meta.get("version", "")),
                                      "api": str(member.meta.get("api", ""))}
        if state in UP:
            view["directory"][member.id] = sorted(member.meta.get("names", ()))
    view["published"] = view["directory"].get(node.id, [])
    if node.forwarder is not None:
        served = len(router.agents) + len(router.mailboxes)
        view["directoryComplete"] = served <= len(node.forwarder.names())
    view["directoryDigest"] = directory_digest(view["directory"])
    return view


def compare(views: dict[str, dict[str, Any]], unreadable: dict[str, str]) -> list[str]:
    """Every difference between the members' views, each in one sentence."""
    differences = [f"{member}: cannot read its view ({why})" for member, why in sorted(unreadable.items())]
    # Membership: every member some view sees up must be up in every view read.
    up = {viewer: {m for m, info in view["members"].items() if info["state"] in UP}
          for viewer, view in views.items()}
    everyone = set().union(*up.values()) if up else set()
    for member in sorted(everyone):
        seen_by = sorted(v for v in views if member in up[v])
        missing = sorted(v for v in views if member not in up[v])
        if missing:
            states = ", ".join(f"{v} sees it {views[v]['members'].get(member, {}).get('state', 'not at all')}"
                               for v in missing)
            differences.append(f"membership differs on {member}: up for {', '.join(seen_by)}; {states}")
    # Versions: what each viewer believes a member runs against what that member says it runs.
    for member, view in sorted(views.items()):
        for viewer, other in sorted(views.items()):
            believed = other["members"].get(member, {}).get("version", "")
            if viewer != member and believed and believed != view["version"]:
                differences.append(f"version differs for {member}: {viewer} sees {believed}, "
                                   f"{member} runs {view['version']}")
    # The directory, both ways, in every viewer's copy.
    for viewer, other in sorted(views.items()):
        for member, names in sorted(other["directory"].items()):
            served = views.get(member)
            if served is None:
                continue
            runs = set(served["agents"]) | set(served["mailboxes"])
            for name in sorted(set(names) - runs):
                differences.append(f"stale directory entry: {viewer} lists {name} on {member}, "
                                   f"which {member} does not run")
            if not served.get("directoryComplete", True):
                continue
            for name in sorted(set(served["agents"]) - set(names)):
                differences.append(f"missing directory entry: {member} runs {name}, "
                                   f"absent from {viewer}'s directory")
    digests = {v: view["directoryDigest"] for v, view in views.items() if view.get("directoryDigest")}
    if len(set(digests.values())) > 1:
        differences.append("directory digests differ: " + ", ".join(f"{v} {d}" for v, d in sorted(digests.items())))
    for member, view in sorted(views.items()):
        if not view.get("directoryComplete", True):
            differences.append(f"{member} serves more names than gossip carries; its directory entry is truncated")
    owners: dict[str, list[str]] = {}
    for member, view in views.items():
        for agent in view["agents"]:
            owners.setdefault(agent, []).append(member)
    for agent, where in sorted(owners.items()):
        if len(where) > 1:
            differences.append(f"agent {agent} runs on several nodes: {', '.join(sorted(where))}")
    return differences


def verify_cluster(node: Node, token: str | None) -> dict[str, Any]:
    """Reads the view of every member any view sees up (this node's first), then compares."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    views: dict[str, dict[str, Any]] = {node.id: local_view(node)}
    unreadable: dict[str, str] = {}
    failed: set[str] = set()
    pending = [node.id]
    while pending:
        viewer = pending.pop()
        for member, info in sorted(views[viewer]["members"].items()):
            if info["state"] == "failed":
                failed.add(member)
            if member in views or member in unreadable or info["state"] not in UP:
                continue
            try:
                with node.peer_http() as http:
                    resp = http.get(f"{info['api']}/v1/cluster/view", headers=headers)
                resp.raise_for_status()
                views[member] = resp.json()
                pending.append(member)
            except (httpx.HTTPError, ValueError) as err:
                unreadable[member] = str(err) or type(err).__name__
    differences = [f"{member} is failed" for member in sorted(failed - set(views))]
    differences += compare(views, unreadable)
    return {"node": node.id, "consistent": not differences, "members": len(views) + len(unreadable),
            "agents": {member: view["agents"] for member, view in sorted(views.items())},
            "digests": {member: view.get("directoryDigest", "") for member, view in sorted(views.items())},
            "differences": differences}
