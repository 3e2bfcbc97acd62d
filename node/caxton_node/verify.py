"""`caxton cluster verify`: compare what each member says it runs with what the
gossip directory says, and name every difference."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from caxton_node.node import Node


def verify_cluster(node: Node, token: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    differences: list[str] = []
    actual: dict[str, list[str]] = {}
    members = node.members()
    for member in members:
        if member["state"] not in ("alive", "suspect"):
            differences.append(f"{member['id']} is {member['state']}")
            continue
        if member["id"] == node.id:
            actual[member["id"]] = sorted(node.router.agents)
            continue
        try:
            with node.peer_http() as http:
                resp = http.get(f"{member['api']}/v1/agents", headers=headers)
            resp.raise_for_status()
            actual[member["id"]] = sorted(a["id"] for a in resp.json())
        except (httpx.HTTPError, KeyError, ValueError) as err:
            differences.append(f"{member['id']}: cannot read its agents ({err})")
    directory: dict[str, list[str]] = {}
    if node.membership is not None:
        for known in node.membership.swim.members.values():
            names = set(known.meta.get("names", ()))
            directory[known.id] = sorted(names & set(actual.get(known.id, names)))
    owners: dict[str, list[str]] = {}
    for member_id, agents in actual.items():
        for agent in agents:
            owners.setdefault(agent, []).append(member_id)
        published = set(directory.get(member_id, agents))
        for agent in sorted(set(agents) - published):
            differences.append(f"{member_id} runs {agent} but the directory does not list it there yet")
    for agent, where in sorted(owners.items()):
        if len(where) > 1:
            differences.append(f"agent {agent} runs on several nodes: {', '.join(sorted(where))}")
    return {"node": node.id, "consistent": not differences, "members": len(members),
            "agents": {k: v for k, v in sorted(actual.items())}, "differences": differences}
