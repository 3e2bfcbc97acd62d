"""`resources`, `cluster rebalance`, `cluster add-node` and `cluster remove`: the runbook's
capacity verbs (docs/rebalance.md).

`resources` reads each node's own measurements (`GET /v1/load`). The others change the
CaxtonCluster and let the operator act: `rebalance` writes a request annotation the
operator answers in `status.rebalance` under the request's id, `add-node` and removing the
highest ordinal go through the scale subresource, and removing another ordinal is a
request the operator carries out (drain, wipe the volume, rejoin fresh).
Exit codes: 0 done, 1 refused or blocked, 2 bad input or unreachable, 3 timed out, 4 not found.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

from caxton_cli.client import ClusterRef, ask_every_node
from caxton_cli.declarative import _api_errors, _wait
from caxton_cli.errors import CommandError
from caxton_cli.output import emit

REBALANCE = "caxton.dev/rebalance"
REMOVE = "caxton.dev/remove-node"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n}B"


def resources(args: argparse.Namespace) -> None:
    """NODE CPU MEMORY AGENTS, from each node's own measurements."""
    answers = ask_every_node(args, lambda client: client.call("GET", "/v1/load"))
    loads = [a.result for a in answers if a.error is None]
    rows = [(n["node"], "-" if n.get("cpuPercent") is None else f"{n['cpuPercent']:.0f}%",
             _size(n["memoryBytes"]), n["agents"],
             "-" if n.get("messageRate") is None else f"{n['messageRate']:.1f}",
             "-" if n.get("memoryFraction") is None else f"{100 * n['memoryFraction']:.0f}% of "
             f"{_size(n['memoryLimitBytes'])}") for n in loads]
    emit(loads, args.output, headers=("NODE", "CPU", "MEMORY", "AGENTS", "MSG/S", "MEMORY/LIMIT"), rows=rows)
    failed = [a for a in answers if a.error is not None]
    for answer in failed:
        print(f"{answer.node}: {answer.error}", file=sys.stderr)
    if failed:
        raise CommandError(f"{len(failed)} of {len(answers)} node(s) did not answer", exit_code=3)


def shed_load(args: argparse.Namespace) -> None:
    """Straight to the nodes (it must work while the operator is down): each sheds the share asked."""
    if not 0 < args.percentage <= 100:
        raise CommandError("--percentage must be above 0 and at most 100", exit_code=2)
    answers = ask_every_node(args, lambda client: client.call("POST", "/v1/shed-load",
                                                              json={"percentage": args.percentage}))
    shed = [a.result for a in answers if a.error is None]
    rows = [(n["node"], a["id"], a["priority"], f"{a['messageRate']:.1f}") for n in shed for a in n["suspended"]]
    emit(shed, args.output, headers=("NODE", "SUSPENDED", "PRIORITY", "MSG/S"), rows=rows,
         empty="nothing suspended: no agent handled messages recently")
    if args.output == "table":
        for n in shed:
            print(f"{n['node']}: shed {n['shed']:.1f} of {n['messageRate']:.1f} messages/s "
                  f"(asked {args.percentage:g}%); undo with: agents resume --priority low", file=sys.stderr)
    failed = [a for a in answers if a.error is not None]
    for answer in failed:
        print(f"{answer.node}: {answer.error}", file=sys.stderr)
    if failed:
        raise CommandError(f"{len(failed)} of {len(answers)} node(s) did not answer", exit_code=3)


def memory_gc(args: argparse.Namespace) -> None:
    """Straight to the nodes: each gives back what it can and says how much, next to its RSS drop."""
    answers = ask_every_node(args, lambda client: client.call("POST", "/v1/memory/gc",
                                                              json={"aggressive": args.aggressive}, timeout=120))
    freed = [a.result for a in answers if a.error is None]
    emit(freed, args.output, headers=("NODE", "AGENTS RESTARTED", "AGENT MEMORY FREED", "WAL FREED", "RSS BEFORE",
                                      "RSS AFTER"),
         rows=[(n["node"], len(n["restarted"]), _size(n["agentMemoryFreedBytes"]), _size(n["walBytesFreed"]),
                _size(n["rssBeforeBytes"]), _size(n["rssAfterBytes"])) for n in freed])
    failed = [a for a in answers if a.error is not None]
    for answer in failed:
        print(f"{answer.node}: {answer.error}", file=sys.stderr)
    if failed:
        raise CommandError(f"{len(failed)} of {len(answers)} node(s) did not answer", exit_code=3)


# -- rebalance ----------------------------------------------------------------------------------------

def _status(ref: ClusterRef) -> dict[str, Any]:
    cluster = ref.kube.get_or_none(ref.path(name=ref.name))
    if cluster is None:
        raise CommandError(f"no CaxtonCluster {ref.name} in {ref.namespace}", exit_code=4)
    return dict((cluster.get("status") or {}).get("rebalance") or {})


def _plan_rows(state: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(m["agent"], m["from"], m["to"], m["reason"]) for m in state.get("plan") or []]


@_api_errors
def rebalance(args: argparse.Namespace) -> None:
    ref = ClusterRef.from_args(args)
    request = {"id": uuid.uuid4().hex[:12], "strategy": args.strategy, "dryRun": args.dry_run}
    ref.kube.patch(ref.path(name=ref.name), {"metadata": {"annotations": {REBALANCE: json.dumps(request)}}})

    def answered() -> dict[str, Any] | None:
        state = _status(ref)
        if state.get("requestId") == request["id"]:
            return state
        if state.get("pendingRequest") == request["id"] and state.get("phase") == "Blocked":
            raise CommandError(f"rebalance blocked: {state.get('reason', '')}", exit_code=1)
        return None

    state = _wait(answered, timeout=args.timeout, what="the operator to answer the rebalance request")
    if not args.dry_run and args.wait:
        last = ""
        started = time.monotonic()
        while state.get("phase") == "Moving":
            line = (f"{state.get('phase')}: {state.get('done', 0)} moved, {state.get('failed', 0)} failed, "
                    f"imbalance {state.get('imbalance', '?')}")
            if line != last:
                print(line, file=sys.stderr, flush=True)
                last = line
            if time.monotonic() - started > args.timeout:
                raise CommandError(f"timed out after {args.timeout:.0f}s; the rebalance goes on "
                                   f"({state.get('done', 0)} moved so far)", exit_code=3)
            time.sleep(1)
            state = _status(ref)
    summary = (f"{state.get('phase')}: imbalance {state.get('imbalance')} (threshold {state.get('threshold')}); "
               f"{state.get('done', 0)} moved, {state.get('failed', 0)} failed; {state.get('reason', '')}")
    if args.dry_run:
        summary = f"dry run, nothing moved: {state.get('reason', '')}"
    rows = _plan_rows(state)
    emit(state, args.output, headers=("AGENT", "FROM", "TO", "REASON"), rows=rows,
         text=None if rows else summary)
    if rows and args.output == "table":
        print(summary, file=sys.stderr)
    if state.get("failed"):
        raise CommandError(f"{state['failed']} move(s) failed: see kubectl get events", exit_code=1)


# -- add-node -----------------------------------------------------------------------------------------

@_api_errors
def add_node(args: argparse.Namespace) -> None:
    if args.count < 1:
        raise CommandError("--count must be at least 1", exit_code=2)
    ref = ClusterRef.from_args(args)
    cluster = ref.kube.get(ref.path(name=ref.name))
    before = int(cluster["spec"]["replicas"])
    after = before + args.count
    ref.kube.patch(ref.path(name=ref.name) + "/scale", {"spec": {"replicas": after}})
    new = [f"{ref.name}-{i}" for i in range(before, after)]
    if args.address:
        print(f"note: {args.address} is not used: the new node is {', '.join(new)}, named and addressed by "
              "the StatefulSet", file=sys.stderr)
    status: dict[str, Any] = {}
    if not args.no_wait:
        def placed() -> dict[str, Any] | None:
            current = ref.kube.get(ref.path(name=ref.name))
            st = current.get("status") or {}
            members = {m["name"]: m for m in st.get("members") or []}
            if len(members) != after or any(m["state"] != "alive" for m in members.values()):
                return None
            total = sum(int(m.get("agents") or 0) for m in members.values())
            strategy = (current["spec"].get("rebalance") or {}).get("strategy", "least-loaded")
            # New members get agents when there are enough to go round and rebalancing is on.
            if strategy != "none" and total >= after and any(int(members[n].get("agents") or 0) == 0 for n in new):
                return None
            return st

        status = _wait(placed, timeout=args.timeout, what=f"{', '.join(new)} to be alive and hold agents")
    members = {m["name"]: m for m in status.get("members") or []}
    emit({"cluster": ref.name, "replicas": after, "added": new, "status": status}, args.output,
         headers=("NODE", "STATE", "AGENTS"), rows=[(n, members.get(n, {}).get("state", "-"),
                                                     members.get(n, {}).get("agents", "-")) for n in new],
         text=None if status else f"caxtoncluster/{ref.name} scaled {before} -> {after}")


# -- remove -------------------------------------------------------------------------------------------

@_api_errors
def remove_node(args: argparse.Namespace) -> None:
    node = args.member or args.node
    if not node:
        raise CommandError("cluster remove needs the node: cluster remove NODE, or --node NODE", exit_code=2)
    ref = ClusterRef.from_args(args)
    cluster = ref.kube.get(ref.path(name=ref.name))
    replicas = int(cluster["spec"]["replicas"])
    prefix = f"{ref.name}-"
    ordinal = node[len(prefix):] if node.startswith(prefix) else ""
    if not ordinal.isdigit() or int(ordinal) >= replicas:
        raise CommandError(f"{node} is not a node of {ref.name} (nodes: {prefix}0 .. {prefix}{replicas - 1})",
                           exit_code=4)
    highest = int(ordinal) == replicas - 1
    if highest and not args.force:
        if replicas == 1:
            raise CommandError(f"{node} is the only node of {ref.name}; delete the CaxtonCluster instead")
        ref.kube.patch(ref.path(name=ref.name) + "/scale", {"spec": {"replicas": replicas - 1}})
        text = (f"{node} is the highest ordinal: {ref.name} scaled {replicas} -> {replicas - 1}; "
                f"the operator moves its agents to the other nodes before the pod goes")
        result: dict[str, Any] = {"node": node, "action": "ScaledDown", "replicas": replicas - 1}
        if not args.no_wait:
            def gone() -> dict[str, Any] | None:
                st = ref.kube.get(ref.path(name=ref.name)).get("status") or {}
                members = st.get("members") or []
                return st if st.get("phase") == "Running" and node not in {m["name"] for m in members} \
                    and len(members) == replicas - 1 else None

            result["status"] = _wait(gone, timeout=args.timeout, what=f"{node} to leave")
        emit(result, args.output, text=text)
        return
    request = {"id": uuid.uuid4().hex[:12], "node": node, "force": args.force}
    ref.kube.patch(ref.path(name=ref.name), {"metadata": {"annotations": {REMOVE: json.dumps(request)}}})
    what = ("forgotten by every member (force-leave)" if args.force
            else "drained, wiped and back as a fresh member")

    def done() -> dict[str, Any] | None:
        st = ref.kube.get(ref.path(name=ref.name)).get("status") or {}
        removal = st.get("removal") or {}
        if removal.get("requestId") != request["id"]:
            return None
        if removal.get("phase") == "Failed":
            raise CommandError(f"removing {node} failed: {removal.get('message', '')}")
        return removal if removal.get("phase") == "Done" or args.no_wait else None

    removal = _wait(done, timeout=args.timeout, what=f"{node} to be {what}")
    emit(removal, args.output, text=f"{node}: {removal.get('message', '')}")
