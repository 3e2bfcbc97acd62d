"""Direct-mode commands against one node's API: agents, queue, memory, trace,
emergency stop and the circuit breaker (runbook sections of the same names)."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import Any

from caxton_cli import client, declarative
from caxton_cli.client import add_connection_args, client_from_args
from caxton_cli.output import CommandError, emit

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


def agents_list(args: argparse.Namespace) -> None:
    agents = client_from_args(args).call("GET", "/v1/agents")
    emit(agents, args.output, headers=AGENT_COLUMNS, rows=[_agent_row(a) for a in agents])


def agents_deploy(args: argparse.Namespace) -> None:
    wasm = Path(args.module).read_bytes()
    limits = {k: v for k, v in {"memory": args.memory, "fuel": args.fuel, "deadline": args.deadline}.items() if v}
    agent = client_from_args(args).call("POST", "/v1/agents", json={
        "id": args.id, "wasm": base64.b64encode(wasm).decode(), "limits": limits, "priority": args.priority,
    })
    emit(agent, args.output, headers=AGENT_COLUMNS, rows=[_agent_row(agent)])


def agents_remove(args: argparse.Namespace) -> None:
    client_from_args(args).call("DELETE", f"/v1/agents/{args.id}")
    print(f"agent {args.id} removed")


def agents_slow(args: argparse.Namespace) -> None:
    slow = client_from_args(args).call("GET", "/v1/slow-agents", params={"threshold": args.threshold})
    emit(slow, args.output, headers=("AGENT-ID", "AVG-LATENCY", "P99-LATENCY"),
         rows=[(a["id"], f"{a['avgLatencyMs']}ms", f"{a['p99LatencyMs']}ms") for a in slow])


def agents_suspend_resume(args: argparse.Namespace) -> None:
    client = client_from_args(args)
    if args.verb == "suspend" and getattr(args, "priority", None):
        if args.id:
            raise CommandError("give an agent id or --priority, not both")
        result = client.call("POST", "/v1/suspend-by-priority", json={"priority": args.priority})
        emit(result, args.output, text=f"suspended {len(result['suspended'])} agent(s) with priority "
             f"{args.priority}: {', '.join(result['suspended']) or '-'}")
        return
    if not args.id:
        raise CommandError(f"which agent? caxton agents {args.verb} AGENT-ID")
    agent = client.call("POST", f"/v1/agents/{args.id}/{args.verb}")
    emit(agent, args.output, headers=AGENT_COLUMNS, rows=[_agent_row(agent)])


def queue_stats(args: argparse.Namespace) -> None:
    stats = client_from_args(args).call("GET", "/v1/queue")
    rows = [(name, depth) for name, depth in sorted(stats["agents"].items(), key=lambda kv: -kv[1])]
    emit(stats, args.output, text=(
        f"Queue depth: {stats['depth']}\nDead letters: {stats['dead_letters']}\n"
        f"Circuit breaker: {'OPEN' if stats['circuit_open'] else 'closed'}\n"
        + ("\n" + "\n".join(f"  {name:30s} {depth}" for name, depth in rows) if rows else "")
    ))


def queue_drain(args: argparse.Namespace) -> None:
    seconds = _seconds(args.timeout)
    result = client_from_args(args).call("POST", "/v1/queue/drain", json={"timeout": args.timeout},
                                         timeout=seconds + 30)
    emit(result, args.output, text=(
        f"drained: {result['processed']} processed, {result['deadLettered']} moved to the dead-letter queue "
        f"(of {result['before']})"
    ))


def _seconds(text: str) -> float:
    from caxton_node.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as err:
        raise CommandError(str(err)) from None


def memory_stats(args: argparse.Namespace) -> None:
    stats = client_from_args(args).call("GET", "/v1/memory")
    emit(stats, args.output, headers=("NODE", "USED", "LIMIT", "AGENTS", "RSS"), rows=[(
        stats["node"], _bytes(stats["agentMemoryBytes"]), _bytes(stats["agentMemoryLimitBytes"]),
        stats["agents"], _bytes(stats["processRssBytes"]),
    )])


def trace(args: argparse.Namespace) -> None:
    result = client_from_args(args).call("GET", f"/v1/conversations/{args.conversation_id}")
    emit(result, args.output, headers=("TIME(ms)", "PERFORMATIVE", "FROM", "TO", "ID", "IN-REPLY-TO"), rows=[
        (m["ts_ms"], m["performative"], m["sender"], m["receiver"], m["id"], m.get("in_reply_to") or "-")
        for m in result["messages"]
    ])


def emergency_stop(args: argparse.Namespace) -> None:
    if args.preserve_state and not args.dump_to:
        raise CommandError("--preserve-state needs --dump-to DIR")
    result = client_from_args(args).call("POST", "/v1/emergency/stop", json={"dump_to": args.dump_to})
    text = f"emergency stop on {result['node']}: suspended {len(result['suspended'])} agent(s)"
    if result.get("dumpedTo"):
        text += f"; state dumped to {result['dumpedTo']}"
    emit(result, args.output, text=text)


def circuit_breaker(args: argparse.Namespace) -> None:
    result = client_from_args(args).call("POST", f"/v1/circuit-breaker/{args.verb}")
    emit(result, args.output, text="circuit breaker " + ("ACTIVE: delivery paused" if result["circuit_open"]
                                                          else "reset: delivery resumed"))


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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def command(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str, func: Any,
                help_text: str) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, help=help_text)
        add_connection_args(parser)
        parser.set_defaults(func=func)
        return parser

    for group_name in ("agents", "agent"):
        group = sub.add_parser(group_name, help="Wasm agents on a node" if group_name == "agents"
                               else "alias of `agents`")
        verbs = group.add_subparsers(dest="verb", required=True)
        command(verbs, "list", agents_list, "agents with state, queue and latency")
        if client.FRONT_DOOR == "kubectl":  # declarative: a CaxtonAgent the operator places
            deploy = command(verbs, "deploy", declarative.agents_deploy,
                             "deploy a Wasm module as a CaxtonAgent (with a ConfigMap holding it)")
            deploy.add_argument("--replicas", type=int, default=1)
            declarative.add_wait_flags(deploy, 120.0)
            remove = command(verbs, "remove", declarative.agents_remove, "delete a CaxtonAgent and its replicas")
            declarative.add_wait_flags(remove, 60.0)
        else:
            deploy = command(verbs, "deploy", agents_deploy, "deploy a Wasm module as an agent")
            remove = command(verbs, "remove", agents_remove, "remove an agent")
        remove.add_argument("id")
        deploy.add_argument("module", help="path of the .wasm file")
        deploy.add_argument("--id", required=True, help="the agent's name")
        deploy.add_argument("--memory", help="memory limit, e.g. 16Mi")
        deploy.add_argument("--fuel", type=int, help="fuel per message")
        deploy.add_argument("--deadline", help="time per message, e.g. 10ms")
        deploy.add_argument("--priority", choices=("low", "normal", "high"), default="normal")
        command(verbs, "slow", agents_slow, "agents whose P99 exceeds a threshold").add_argument(
            "--threshold", default="100ms")
        for verb in ("suspend", "resume"):
            parser = command(verbs, verb, agents_suspend_resume, f"{verb} an agent")
            parser.add_argument("id", nargs="?")
            if verb == "suspend":
                parser.add_argument("--priority", choices=("low", "normal", "high"),
                                    help="suspend every running agent of this priority")

    queue = sub.add_parser("queue", help="message queues").add_subparsers(dest="verb", required=True)
    command(queue, "stats", queue_stats, "queue depth per agent, dead letters")
    command(queue, "drain", queue_drain, "wait for the backlog, dead-letter what is left").add_argument(
        "--timeout", default="60s")

    memory = sub.add_parser("memory", help="memory use").add_subparsers(dest="verb", required=True)
    command(memory, "stats", memory_stats, "agent memory against limits")

    command(sub, "trace", trace, "the messages of a conversation").add_argument(
        "--conversation-id", required=True)

    emergency = sub.add_parser("emergency", help="emergency procedures").add_subparsers(dest="verb", required=True)
    stop = command(emergency, "stop", emergency_stop, "suspend every agent now")
    stop.add_argument("--all-agents", action="store_true", help="(default) every agent on the node")
    stop.add_argument("--preserve-state", action="store_true")
    stop.add_argument("--dump-to", help="directory on the node for a state snapshot")

    breaker = sub.add_parser("circuit-breaker", help="pause or resume all delivery").add_subparsers(
        dest="verb", required=True)
    command(breaker, "activate", circuit_breaker, "pause delivery to every agent").add_argument(
        "--all", action="store_true", help="(default) every agent")
    command(breaker, "reset", circuit_breaker, "resume delivery")

    msg = command(sub, "send", send, "send one message to an agent")
    msg.add_argument("--to", required=True)
    msg.add_argument("--sender", default="cli")
    msg.add_argument("--performative", default="request")
    msg.add_argument("--content", default="null", help="JSON (or a plain string)")
    msg.add_argument("--conversation-id")
