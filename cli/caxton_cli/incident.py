"""The runbook's incident verbs: partitions (detect with a strategy, compare the sides,
resolve), error cascades, message patterns, agent profiles and configuration drift.
Each asks every node (plugin mode) or the one node (direct mode) and decides with the
pure functions of `analysis`."""

from __future__ import annotations

import argparse
import time
from typing import Any

from caxton_cli import analysis
from caxton_cli.client import Answer, ask_every_node
from caxton_cli.errors import CommandError
from caxton_cli.output import emit, table

DEAD_LETTER_WINDOW = 10_000  # the most a node returns in one answer


def _seconds(text: str, flag: str) -> float:
    from caxton_node.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as err:
        raise CommandError(f"{flag}: {err}", exit_code=2) from None


def _answered(answers: list[Answer]) -> list[Answer]:
    """The answers; if no node answered at all, the command cannot say anything (exit 2)."""
    if answers and all(a.error is not None for a in answers):
        raise CommandError("; ".join(f"{a.node}: {a.error}" for a in answers), exit_code=2)
    return answers


def _unanswered_note(answers: list[Answer]) -> list[str]:
    return [f"WARNING: {a.node} did not answer: {a.error}" for a in answers if a.error is not None]


# -- partitions --------------------------------------------------------------------------


def _partition_views(args: argparse.Namespace) -> tuple[dict[str, dict[str, Any] | None], list[Answer]]:
    answers = _answered(ask_every_node(args, lambda c: c.call("GET", "/v1/cluster/partition")))
    return {a.node: a.result for a in answers}, answers


def resolve_strategy(args: argparse.Namespace) -> None:
    """`cluster detect-partition --resolve-strategy manual|auto`: detect from every node;
    manual prints the plan (compare, then resolve), auto carries it out for the majority."""
    views, answers = _partition_views(args)
    sides = analysis.partition_sides(views)
    partitioned = bool(sides.minority) or any(v and v.get("partitioned") for v in views.values())
    data: dict[str, Any] = {"partitioned": partitioned, "majority": sides.majority, "minority": sides.minority,
                            "unanswered": sides.unanswered, "strategy": args.resolve_strategy}
    if not partitioned:
        emit(data, args.output, text=f"No partition: {len(sides.majority)} node(s) agree they hold quorum")
        return
    lines = ["WARNING: Network partition detected",
             f"Partition A: [{', '.join(sides.majority)}] (majority)",
             f"Partition B: [{', '.join(sides.minority + sides.unanswered)}] (minority)",
             *_unanswered_note(answers)]
    if args.resolve_strategy == "manual":
        lines += ["Plan (manual):", "  1. compare the sides:  cluster compare-state",
                  "  2. resolve:            cluster resolve-partition --prefer majority"]
        emit({**data, "plan": ["cluster compare-state", "cluster resolve-partition --prefer majority"]},
             args.output, text="\n".join(lines))
        raise CommandError("network partition detected", exit_code=3)
    result = _resolve(args, sides, "majority")
    emit({**data, "resolution": result}, args.output, text="\n".join([*lines, *_resolution_lines(result)]))


def compare_state(args: argparse.Namespace) -> None:
    """What each side holds that the other lacks (agents, queued writes, dead letters)."""
    views, answers = _partition_views(args)
    sides = analysis.partition_sides(views)

    def state(client: Any) -> dict[str, Any]:
        view = client.call("GET", "/v1/cluster/view")
        status = client.call("GET", "/v1/cluster/status")
        queue = client.call("GET", "/v1/queue")
        return {"agents": view["agents"], "queuedWrites": status["queuedWrites"], "deadLetters": queue["dead_letters"]}

    states = {a.node: a.result for a in ask_every_node(args, state) if a.error is None}
    diff = analysis.state_differences(states, sides)
    rows = []
    for side in ("majority", "minority"):
        d = diff[side]
        rows.append((side, ",".join(d["nodes"]) or "-", len(d["agents"]), ",".join(d["only"]) or "-",
                     d["queuedWrites"], d["deadLetters"]))
    text = table(("SIDE", "NODES", "AGENTS", "ONLY-HERE", "QUEUED-WRITES", "DEAD-LETTERS"), rows)
    notes = _unanswered_note(answers)
    if not sides.minority:
        notes.append("No partition: one side holds every answering node")
    emit(diff, args.output, text="\n".join([text, *notes]))


def _resolve(args: argparse.Namespace, sides: analysis.Sides, prefer: str) -> dict[str, Any]:
    """The losing side gives up its queued writes: each of its nodes dead-letters the messages
    it holds for peers (reason partition_resolved: kept and listed, for an operator to resend)
    instead of replaying them when the partition heals. The winning side is not touched."""
    losers = analysis.losing_side(sides, prefer)
    targeted = argparse.Namespace(**vars(args))
    given_up: dict[str, Any] = {}
    for node in losers:
        targeted.node = node
        answer = ask_every_node(targeted, lambda c: c.call("POST", "/v1/cluster/partition/yield"))[0]
        given_up[node] = answer.result if answer.error is None else {"error": str(answer.error)}
    return {"prefer": prefer, "losing": losers, "nodes": given_up}


def _resolution_lines(result: dict[str, Any]) -> list[str]:
    lines = [f"Resolved for the {result['prefer']} side."]
    for node, r in result["nodes"].items():
        if "error" in r:
            lines.append(f"  {node}: not resolved: {r['error']}")
        else:
            lines.append(f"  {node}: {r['deadLettered']} queued write(s) dead-lettered (partition_resolved)")
    if not result["nodes"]:
        lines.append("  the other side has no node")
    return lines


def resolve_partition(args: argparse.Namespace) -> None:
    views, answers = _partition_views(args)
    sides = analysis.partition_sides(views)
    if not sides.minority and not sides.unanswered:
        emit({"partitioned": False}, args.output, text="No partition to resolve: every node holds quorum")
        return
    if args.front_door != "kubectl" and args.prefer == "minority":
        raise CommandError("--prefer minority needs the plugin (kubectl caxton): it asks the majority's nodes",
                           exit_code=2)
    result = _resolve(args, sides, args.prefer)
    failed = [n for n, r in result["nodes"].items() if "error" in r]
    emit(result, args.output, text="\n".join([*_resolution_lines(result), *_unanswered_note(answers)]))
    if failed:
        raise CommandError(f"could not resolve on {', '.join(failed)}", exit_code=3)


# -- messages ----------------------------------------------------------------------------


def _dead_letters(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[Answer]]:
    answers = _answered(ask_every_node(args, lambda c: c.call("GET", "/v1/dead-letters",
                                                              params={"limit": DEAD_LETTER_WINDOW})))
    return [{"node": a.node, **d} for a in answers if a.error is None for d in a.result], answers


def error_cascade(args: argparse.Namespace) -> None:
    since_ms = int((time.time() - _seconds(args.last, "--last")) * 1000)
    letters, answers = _dead_letters(args)
    cascades = analysis.error_cascades(letters, since_ms)
    rows = [(c["conversation_id"], " -> ".join(c["agents"]), c["failures"], c["first"]["agent"],
             c["first"]["reason"][:60]) for c in cascades]
    notes = _unanswered_note(answers)
    if not cascades:
        emit(cascades, args.output, text="\n".join([f"No error cascade in the last {args.last} "
                                                    f"({len([d for d in letters if d['ts_ms'] >= since_ms])} "
                                                    "failed message(s))", *notes]))
        return
    emit(cascades, args.output, text="\n".join([
        table(("CONVERSATION", "CASCADE", "FAILURES", "FIRST-FAILURE", "REASON"), rows),
        f"Root cause: {cascades[0]['first']['agent']} ({cascades[0]['first']['reason']})", *notes]))


def analyze_messages(args: argparse.Namespace) -> None:
    import re

    try:
        re.compile(args.pattern)
    except re.error as err:
        raise CommandError(f"--pattern is not a regular expression: {err}", exit_code=2) from None
    since_ms = int((time.time() - _seconds(args.last, "--last")) * 1000)
    letters, answers = _dead_letters(args)
    counts = analysis.message_patterns(letters, args.pattern, since_ms)
    blocks = [f"{counts['matched']} failed message(s) matching {args.pattern!r} in the last {args.last}"]
    for title, key in (("AGENT", "byAgent"), ("PERFORMATIVE", "byPerformative"), ("ERROR", "byError")):
        if counts[key]:
            blocks.append(table((title, "COUNT"), list(counts[key].items())))
    emit(counts, args.output, text="\n\n".join([*blocks, *_unanswered_note(answers)]))


# -- agents and configuration ------------------------------------------------------------


def profile(args: argparse.Namespace) -> None:
    """Samples the agent on every node that runs it over the window: messages handled,
    failures, latency (average of the window, P99 as the node reports it), memory."""
    duration = _seconds(args.duration, "--duration")
    interval = max(min(duration / 10, 5.0), 0.2)

    def sample(client: Any) -> dict[str, Any] | None:
        try:
            agent: dict[str, Any] = client.call("GET", f"/v1/agents/{args.agent}")
        except CommandError as err:
            if err.exit_code == 4:
                return None
            raise
        return agent

    first = {a.node: a.result for a in ask_every_node(args, sample) if a.error is None and a.result}
    if not first:
        raise CommandError(f"no node runs agent {args.agent}", exit_code=4)
    samples: dict[str, list[dict[str, Any]]] = {n: [a] for n, a in first.items()}
    deadline = time.monotonic() + duration
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(interval, left))
        for a in ask_every_node(args, sample):
            if a.error is None and a.result and a.node in samples:
                samples[a.node].append(a.result)
    result = [_profile_of(node, taken, duration) for node, taken in sorted(samples.items())]
    emit(result, args.output, headers=("NODE", "HANDLED", "RATE/S", "FAILURES", "AVG-LATENCY", "P99-LATENCY",
                                       "MEMORY", "MEMORY-PEAK", "SAMPLES"),
         rows=[(p["node"], p["handled"], p["ratePerSecond"], p["failures"], f"{p['avgLatencyMs']}ms",
                f"{p['p99LatencyMs']}ms", p["memoryBytes"], p["memoryPeakBytes"], p["samples"]) for p in result])


def _profile_of(node: str, taken: list[dict[str, Any]], duration: float) -> dict[str, Any]:
    first, last = taken[0], taken[-1]
    handled = last["handled"] - first["handled"]
    return {"node": node, "agent": last["id"], "seconds": duration, "samples": len(taken), "handled": handled,
            "ratePerSecond": round(handled / duration, 2) if duration else 0.0,
            "failures": last["failures"] - first["failures"], "avgLatencyMs": last["avgLatencyMs"],
            "p99LatencyMs": last["p99LatencyMs"], "memoryBytes": last["memoryBytes"],
            "memoryPeakBytes": max(s["memoryBytes"] for s in taken), "fuel": last["limits"].get("fuel")}


def config_diff(args: argparse.Namespace) -> None:
    """Each node's running configuration against a baseline file, key by key (the baseline
    read as the node reads its file, so defaults fill what it leaves out)."""
    import yaml
    from caxton_node.config import ConfigError, load_config

    try:
        with open(args.baseline) as f:
            raw = yaml.safe_load(f) or {}
        baseline = load_config(raw).model_dump(mode="json")
    except OSError as err:
        raise CommandError(f"cannot read {args.baseline}: {err.strerror}", exit_code=2) from None
    except (yaml.YAMLError, ConfigError) as err:
        raise CommandError(f"{args.baseline} is not a valid node configuration: {err}", exit_code=2) from None
    answers = _answered(ask_every_node(args, lambda c: c.call("GET", "/v1/config")))
    per_node = {a.node: analysis.config_drift(baseline, a.result) for a in answers if a.error is None}
    # Per node by nature (its own id, addresses): reported, but not drift.
    own = {"node.id", "coordination.cluster.advertise_addr"}
    rows = [(node, key, _show(want), _show(have)) for node, drift in per_node.items()
            for key, want, have in drift if key not in own]
    data = {"baseline": args.baseline, "nodes": {n: [{"key": k, "baseline": w, "running": h} for k, w, h in d]
                                                 for n, d in per_node.items()}}
    notes = _unanswered_note(answers)
    if not rows:
        emit(data, args.output, text="\n".join([f"No drift: {len(per_node)} node(s) match {args.baseline}", *notes]))
        return
    emit(data, args.output, text="\n".join([table(("NODE", "KEY", "BASELINE", "RUNNING"), rows), *notes]))
    raise CommandError(f"{len(rows)} difference(s) from {args.baseline}", exit_code=3)


def _show(value: Any) -> str:
    return "-" if value is None else str(value)
