"""Pure answers for the incident verbs, from what the nodes report (table-tested in
tests/cli/test_analysis.py): error cascades, message patterns, configuration drift,
the two sides of a partition and which one loses a resolution."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any


def _conversation(letter: dict[str, Any]) -> str:
    return str(letter.get("message", {}).get("conversation_id") or letter.get("id", ""))


def error_cascades(dead_letters: list[dict[str, Any]], since_ms: int) -> list[dict[str, Any]]:
    """Conversations whose failures reached more than one agent since `since_ms`, the first
    failure named: a cascade is one agent's failure spreading to the agents that talk to it.
    Each dead letter carries the failing agent (`agent`), its `reason` and `ts_ms`."""
    by_conversation: dict[str, list[dict[str, Any]]] = {}
    for letter in dead_letters:
        if int(letter.get("ts_ms", 0)) >= since_ms:
            by_conversation.setdefault(_conversation(letter), []).append(letter)
    cascades = []
    for conversation, letters in by_conversation.items():
        letters.sort(key=lambda d: (int(d.get("ts_ms", 0)), str(d.get("id", ""))))
        path: list[str] = []
        for letter in letters:
            agent = str(letter.get("agent") or letter.get("message", {}).get("receiver", ""))
            if agent not in path:
                path.append(agent)
        if len(path) < 2:
            continue
        first = letters[0]
        cascades.append({
            "conversation_id": conversation, "agents": path, "failures": len(letters),
            "first": {"agent": path[0], "reason": first.get("reason", ""), "ts_ms": int(first.get("ts_ms", 0)),
                      "node": first.get("node", "")},
        })
    cascades.sort(key=lambda c: (-len(c["agents"]), c["first"]["ts_ms"]))  # type: ignore[arg-type, index]
    return cascades


def message_patterns(dead_letters: list[dict[str, Any]], pattern: str, since_ms: int) -> dict[str, Any]:
    """Failed messages since `since_ms` whose reason or content matches `pattern` (a regular
    expression, case-insensitive), counted by agent, performative and error."""
    regex = re.compile(pattern, re.IGNORECASE)
    by_agent: Counter[str] = Counter()
    by_performative: Counter[str] = Counter()
    by_error: Counter[str] = Counter()
    for letter in dead_letters:
        if int(letter.get("ts_ms", 0)) < since_ms:
            continue
        message = letter.get("message", {})
        reason = str(letter.get("reason", ""))
        if not (regex.search(reason) or regex.search(str(message.get("content", "")))):
            continue
        by_agent[str(letter.get("agent") or message.get("receiver", ""))] += 1
        by_performative[str(message.get("performative", ""))] += 1
        by_error[_error_kind(reason)] += 1
    return {"matched": sum(by_agent.values()), "byAgent": dict(by_agent.most_common()),
            "byPerformative": dict(by_performative.most_common()), "byError": dict(by_error.most_common())}


def _error_kind(reason: str) -> str:
    """A reason without its particulars ("deadline exceeded after 12ms" -> "deadline exceeded")."""
    head = re.split(r"[:(]| after | for ", reason, maxsplit=1)[0].strip()
    return re.sub(r"\d+(\.\d+)?\s*(ms|s|bytes|B)?\b", "N", head) or "unknown"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (lists stay values)."""
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_drift(baseline: dict[str, Any], running: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, baseline value, running value) for every key whose values differ, by key."""
    want, have = flatten(baseline), flatten(running)
    return [(key, want.get(key), have.get(key)) for key in sorted(set(want) | set(have))
            if want.get(key) != have.get(key)]


@dataclass(frozen=True)
class Sides:
    """The two sides of a partition as the nodes see them (node -> what it reports)."""

    majority: list[str]
    minority: list[str]
    unanswered: list[str]


def partition_sides(views: dict[str, dict[str, Any] | None]) -> Sides:
    """Which node is on which side, from each node's own partition view: a node that holds
    quorum is on the majority side; a node that answered without quorum on the minority;
    a node that did not answer is named apart (it may be down, or cut off from the API)."""
    majority, minority, unanswered = [], [], []
    for node, view in sorted(views.items()):
        if view is None:
            unanswered.append(node)
        elif view.get("side") == "minority":
            minority.append(node)
        else:
            majority.append(node)
    return Sides(majority, minority, unanswered)


def state_differences(states: dict[str, dict[str, Any]], sides: Sides) -> dict[str, Any]:
    """What each side holds that the other lacks: agents (by id) and queued writes.
    `states` maps node -> {"agents": [ids], "queuedWrites": n, "deadLetters": n}."""
    def side_state(nodes: list[str]) -> dict[str, Any]:
        agents = sorted({a for n in nodes for a in states.get(n, {}).get("agents", [])})
        return {"nodes": nodes, "agents": agents,
                "queuedWrites": sum(int(states.get(n, {}).get("queuedWrites", 0)) for n in nodes),
                "deadLetters": sum(int(states.get(n, {}).get("deadLetters", 0)) for n in nodes)}

    major, minor = side_state(sides.majority), side_state(sides.minority)
    return {"majority": {**major, "only": sorted(set(major["agents"]) - set(minor["agents"]))},
            "minority": {**minor, "only": sorted(set(minor["agents"]) - set(major["agents"]))},
            "unanswered": sides.unanswered}


def losing_side(sides: Sides, prefer: str) -> list[str]:
    """The nodes whose queued writes give way when the partition is resolved for `prefer`."""
    if prefer not in ("majority", "minority"):
        raise ValueError(f"prefer must be majority or minority, not {prefer!r}")
    return sides.minority if prefer == "majority" else sides.majority
