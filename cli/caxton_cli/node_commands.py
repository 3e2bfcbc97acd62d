"""Commands on nodes' APIs: agents, queue, memory, trace, emergency stop and the circuit
breaker (runbook sections of the same names). In plugin mode `agents list|slow`,
`queue stats` and `memory stats` ask every node at once and add a NODE column and totals."""

from __future__ import annotations

import argparse
import base64
import json
from typing import Any

from caxton_cli.client import Answer, ask_every_node, client_from_args, read_module
from caxton_cli.errors import CommandError
from caxton_cli.output import View, emit
from caxton_cli.watching import show

AGENT_COLUMNS = ("AGENT-ID", "STATE", "PRIORITY", "QUEUE", "HANDLED", "FAILURES", "MEMORY", "P99-LATENCY")


def _agent_row(a: dict[str, Any]) -> tuple[Any, ...]:
    return (a["id"], a["state"], a["priority"], a["queue"], a["handled"], a["failures"],
            _bytes(a["memoryBytes"]), f"{a['p99LatencyMs']}ms")


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def _cluster_wide(args: argparse.Namespace) -> bool:
    return bool(args.front_door == "kubectl")


def _report_unreachable(answers: list[Answer]) -> None:
    """After the table: a node that did not answer is named, and the command exits 2."""
    failed = [a for a in answers if a.error is not None]
    if failed:
        raise CommandError("; ".join(f"{a.node}: {a.error}" for a in failed), exit_code=2)


def _listed_everywhere(args: argparse.Namespace, path: str, params: dict[str, Any] | None = None,
                       ) -> tuple[list[dict[str, Any]], list[Answer]]:
    answers = ask_every_node(args, lambda client: client.call("GET", path, params=params))
    items = [{"node": a.node, **item} for a in answers if a.error is None for item in a.result]
    return items, answers


def agents_list(args: argparse.Namespace) -> None:
    if not _cluster_wide(args):
        agents = client_from_args(args).call("GET", "/v1/agents")
        emit(agents, args.output, headers=AGENT_COLUMNS, rows=[_agent_row(a) for a in agents])
        return
    agents, answers = _listed_everywhere(args, "/v1/agents")
    emit(agents, args.output, headers=("NODE", *AGENT_COLUMNS), rows=[(a["node"], *_agent_row(a)) for a in agents],
         empty=f"No agents on {len(answers)} node(s).")
    _report_unreachable(answers)


def agents_deploy(args: argparse.Namespace) -> None:
    wasm = read_module(args.module)
    limits = {k: v for k, v in {"memory": args.memory, "fuel": args.fuel, "deadline": args.deadline}.items() if v}
    agent = client_from_args(args).call("POST", "/v1/agents", json={
        "id": args.id, "wasm": base64.b64encode(wasm).decode(), "limits": limits, "priority": args.priority,
    })
    emit(agent, args.output, headers=AGENT_COLUMNS, rows=[_agent_row(agent)])


def agents_remove(args: argparse.Namespace) -> None:
    client_from_args(args).call("DELETE", f"/v1/agents/{args.id}")
    print(f"agent {args.id} removed")


def agents_slow(args: argparse.Namespace) -> None:
    params = {"threshold": args.threshold}
    if not _cluster_wide(args):
        slow = client_from_args(args).call("GET", "/v1/slow-agents", params=params)
        emit(slow, args.output, headers=("AGENT-ID", "AVG-LATENCY", "P99-LATENCY"),
             rows=[(a["id"], f"{a['avgLatencyMs']}ms", f"{a['p99LatencyMs']}ms") for a in slow])
        return
    slow, answers = _listed_everywhere(args, "/v1/slow-agents", params)
    emit(slow, args.output, headers=("NODE", "AGENT-ID", "AVG-LATENCY", "P99-LATENCY"),
         rows=[(a["node"], a["id"], f"{a['avgLatencyMs']}ms", f"{a['p99LatencyMs']}ms") for a in slow],
         empty=f"No agent slower than {args.threshold} on {len(answers)} node(s).")
    _report_unreachable(answers)


def agents_suspend_resume(args: argparse.Namespace) -> None:
    client = client_from_args(args)
    if getattr(args, "priority", None):
        if args.id:
            raise CommandError("give an agent id or --priority, not both")
        result = client.call("POST", f"/v1/{args.verb}-by-priority", json={"priority": args.priority})
        done = "suspended" if args.verb == "suspend" else "resumed"
        emit(result, args.output, text=f"{done} {len(result['suspended'])} agent(s) with priority "
             f"{args.priority}: {', '.join(result['suspended']) or '-'}")
        return
    if not args.id:
        raise CommandError(f"which agent? caxton agents {args.verb} AGENT-ID")
    agent = client.call("POST", f"/v1/agents/{args.id}/{args.verb}")
    emit(agent, args.output, headers=AGENT_COLUMNS, rows=[_agent_row(agent)])


def _one_queue(stats: dict[str, Any]) -> View:
    rows = [(name, depth) for name, depth in sorted(stats["agents"].items(), key=lambda kv: -kv[1])]
    return View(stats, text=(
        f"Queue depth: {stats['depth']}\nDead letters: {stats['dead_letters']}\n"
        f"Circuit breaker: {'OPEN' if stats['circuit_open'] else 'closed'}\n"
        + ("\n" + "\n".join(f"  {name:30s} {depth}" for name, depth in rows) if rows else "")
    ))


def queues(answers: list[Answer]) -> View:
    """Per node and in total; agents with a backlog are listed under the table."""
    from caxton_cli.output import table

    nodes = [{"node": a.node, **a.result} for a in answers if a.error is None]
    total = {"depth": sum(n["depth"] for n in nodes), "dead_letters": sum(n["dead_letters"] for n in nodes)}
    rows: list[tuple[Any, ...]] = [
        (a.node, n["depth"], n["dead_letters"], "OPEN" if n["circuit_open"] else "closed")
        if (n := a.result) is not None else (a.node, "-", "-", "unreachable") for a in answers]
    rows.append(("TOTAL", total["depth"], total["dead_letters"], ""))
    backlog = sorted(((n["node"], agent, depth) for n in nodes for agent, depth in n["agents"].items() if depth),
                     key=lambda t: -t[2])
    text = table(("NODE", "DEPTH", "DEAD-LETTERS", "CIRCUIT-BREAKER"), rows)
    if backlog:
        text += "\n\n" + table(("NODE", "AGENT", "DEPTH"), backlog)
    data = {"nodes": nodes, "total": total, "unreachable": {a.node: str(a.error) for a in answers if a.error}}
    return View(data, text=text)


def queue_stats(args: argparse.Namespace) -> None:
    if not _cluster_wide(args):
        client = client_from_args(args)
        show(args, lambda: _one_queue(client.call("GET", "/v1/queue")))
        return
    show(args, lambda: queues(ask_every_node(args, lambda client: client.call("GET", "/v1/queue"))))


def queue_drain(args: argparse.Namespace) -> None:
    seconds = _seconds(args.timeout)
    result = client_from_args(args).call("POST", "/v1/queue/drain", json={"timeout": args.timeout},
                                         timeout=seconds + 30)
    emit(result, args.output, text=(
        f"drained: {result['processed']} processed, {result['deadLettered']} moved to the dead-letter queue "
        f"(of {result['before']})"
    ))


def _seconds(text: str) -> float:
    from caxton_node.units import parse_duration

    try:
        return parse_duration(text)
    except ValueError as err:
        raise CommandError(str(err)) from None


MEMORY_COLUMNS = ("NODE", "USED", "LIMIT", "AGENTS", "RSS")


def memories(answers: list[Answer]) -> View:
    """Per node, in node order (an unanswered node keeps its row), and in total."""
    nodes = [a.result for a in answers if a.error is None]
    rows: list[tuple[Any, ...]] = [(
        n["node"], _bytes(n["agentMemoryBytes"]), _bytes(n["agentMemoryLimitBytes"]), n["agents"],
        _bytes(n["processRssBytes"])) if (n := a.result) is not None else (a.node, "-", "-", "-", "unreachable")
        for a in answers]
    keys = ("agentMemoryBytes", "agentMemoryLimitBytes", "agents", "processRssBytes")
    total = {key: sum(n[key] for n in nodes) for key in keys}
    rows.append(("TOTAL", _bytes(total["agentMemoryBytes"]), _bytes(total["agentMemoryLimitBytes"]), total["agents"],
                 _bytes(total["processRssBytes"])))
    return View({"nodes": nodes, "total": total}, headers=MEMORY_COLUMNS, rows=rows)


def memory_stats(args: argparse.Namespace) -> None:
    answers = ask_every_node(args, lambda client: client.call("GET", "/v1/memory"))
    if not _cluster_wide(args):  # one node, as the runbook prints it
        n = answers[0].result
        emit(n, args.output, headers=MEMORY_COLUMNS, rows=[(
            n["node"], _bytes(n["agentMemoryBytes"]), _bytes(n["agentMemoryLimitBytes"]), n["agents"],
            _bytes(n["processRssBytes"]))])
        return
    memories(answers).emit(args.output)
    _report_unreachable(answers)


def trace(args: argparse.Namespace) -> None:
    if args.error_cascade:
        from caxton_cli.incident import error_cascade

        error_cascade(args)
        return
    if not args.conversation_id:
        raise CommandError("trace needs --conversation-id ID or --error-cascade", exit_code=2)
    result = client_from_args(args).call("GET", f"/v1/conversations/{args.conversation_id}")
    emit(result, args.output, headers=("TIME(ms)", "PERFORMATIVE", "FROM", "TO", "ID", "IN-REPLY-TO"), rows=[
        (m["ts_ms"], m["performative"], m["sender"], m["receiver"], m["id"], m.get("in_reply_to") or "-")
        for m in result["messages"]
    ])


def emergency_stop(args: argparse.Namespace) -> None:
    """Suspends every agent: in the plugin on every node (or --node); directly on this node,
    or with a bare --cluster on every member the node knows (through their APIs)."""
    if args.preserve_state and not args.dump_to:
        raise CommandError("--preserve-state needs --dump-to DIR")
    every = getattr(args, "cluster", None) == "*"
    if every:
        args.cluster = None

    def stop(client: Any) -> Any:
        return client.call("POST", "/v1/emergency/stop", json={"dump_to": args.dump_to})

    if _cluster_wide(args):
        answers = ask_every_node(args, stop)
    elif every:
        answers = _every_member(args, stop)
    else:
        answers = [Answer(args.api, result=stop(client_from_args(args)))]
    lines = []
    for a in answers:
        if a.error is not None:
            continue
        r = a.result
        lines.append(f"emergency stop on {r['node']}: suspended {len(r['suspended'])} agent(s)"
                     + (f"; state dumped to {r['dumpedTo']}" if r.get("dumpedTo") else ""))
    results = [a.result for a in answers if a.error is None]
    emit(results if len(answers) > 1 or every else results[0], args.output, text="\n".join(lines))
    _report_unreachable(answers)


def _every_member(args: argparse.Namespace, ask: Any) -> list[Answer]:
    """Direct mode: every member's API as the node's membership lists it, with the same token."""
    from caxton_cli.client import NodeClient, _direct

    first = _direct(args)
    token = first._http.headers.get("Authorization", "").removeprefix("Bearer ") or None
    answers = []
    members = first.call("GET", "/v1/cluster/members")
    for member in members:
        api = member.get("api") or (args.api if len(members) == 1 else "")  # a lone node: this one
        if not api:
            answers.append(Answer(member["id"], error=CommandError(f"{member['id']} publishes no API address")))
            continue
        try:
            answers.append(Answer(member["id"], result=ask(NodeClient(api, token))))
        except CommandError as err:
            answers.append(Answer(member["id"], error=err))
    return answers


def circuit_breaker(args: argparse.Namespace) -> None:
    """On every node (plugin mode; --node for one): a storm is not confined to one node."""
    body = None
    if args.verb == "reset" and args.gradual:
        body = {"gradual": True, "duration": args.duration}
    elif args.verb == "reset" and args.duration:
        raise CommandError("--duration goes with --gradual", exit_code=2)
    answers = ask_every_node(args, lambda c: c.call("POST", f"/v1/circuit-breaker/{args.verb}", json=body))
    results = [{"node": a.node, **a.result} for a in answers if a.error is None]
    lines = []
    for r in results:
        if r["circuit_open"]:
            lines.append(f"{r['node']}: circuit breaker ACTIVE: delivery paused")
        elif r.get("rampSeconds"):
            lines.append(f"{r['node']}: circuit breaker reset gradually: admission ramps from "
                         f"{r['rampFrom']}/s to full over {r['rampSeconds']:g}s")
        else:
            lines.append(f"{r['node']}: circuit breaker reset: delivery resumed")
    emit(results, args.output, text="\n".join(lines))
    _report_unreachable(answers)


def send(args: argparse.Namespace) -> None:
    try:
        content = json.loads(args.content)
    except json.JSONDecodeError:
        content = args.content
    message = {"performative": args.performative, "sender": args.sender, "receiver": args.to, "content": content}
    if args.conversation_id:
        message["conversation_id"] = args.conversation_id
    result = client_from_args(args).call("POST", "/v1/messages", json=message)
    emit(result, args.output, text=f"sent {result['id']} (conversation {result['conversation_id']})")
