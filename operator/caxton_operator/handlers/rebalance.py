"""CaxtonCluster rebalancing: gather the nodes' loads, plan (balance.py), move (rebalance.py).

A timer of its own, so a long round never delays the status timer. Each round asks every
staying node for its load (`GET /v1/load`), plans, checks the gates, and moves at most
MOVES_PER_ROUND agents, each posted as an Event and counted in `status.rebalance`
(Strimzi-style: phase Proposed, Moving, Done, with counts). Automatic rounds start when the
imbalance is above `spec.rebalance.threshold` (a scale-out or a returning node makes one)
and are COOLDOWN apart; an explicit `kubectl caxton cluster rebalance` is a request in the
REQUEST annotation, answered in status under its id (a dry run only proposes). Everything
the next round needs is in status or observed again, so a restarted operator carries on.
"""

from __future__ import annotations

import calendar
import json
import logging
import time
from typing import Any

import kopf

from caxton_operator import balance, kubeapi, marks
from caxton_operator.conditions import now_iso
from caxton_operator.handlers.cluster import GROUP, PLURAL, VERSION, cluster_path, is_paused, upgrade_active
from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.nodeapi import NodeApi, NodeUnavailable
from caxton_operator.rebalance import move_agent
from caxton_operator.resources.naming import Names

ROUND_INTERVAL = 5.0  # seconds between rounds
MOVES_PER_ROUND = 10
COOLDOWN = 10.0  # seconds between automatic rounds that moved something
RETURNED_WITHIN = 300.0  # a member back from failed this recently makes the trigger NodeReturned


def _request(body: kopf.Body) -> dict[str, Any] | None:
    raw = marks.annotations_of(body).get(marks.REBALANCE, "")
    try:
        request = json.loads(raw) if raw else None
    except ValueError:
        return None
    return request if isinstance(request, dict) and request.get("id") else None


def _epoch(iso: str | None) -> float | None:
    return float(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))) if iso else None


def _trigger(status: dict[str, Any], reports: dict[str, dict[str, Any]]) -> str:
    """Why a run starts: a member back from failed, an empty node beside loaded ones (a scale-out),
    or plain imbalance."""
    for member in status.get("members") or []:
        since = _epoch(member.get("lastTransitionTime"))
        if member.get("previousState") == "failed" and member.get("state") == "alive" and since \
                and time.time() - since < RETURNED_WITHIN:
            return "NodeReturned"
    counts = [r["agents"] for r in reports.values()]
    if counts and min(counts) == 0 and max(counts) > 0:
        return "ScaleOut"
    return "Imbalance"


def _patch_status(namespace: str, name: str, rebalance: dict[str, Any]) -> None:
    """Progress while a round runs (the handler's own patch lands only when it returns)."""
    kubeapi.client().patch(f"{cluster_path(namespace, name)}/status", {"status": {"rebalance": rebalance}})


@kopf.timer(GROUP, VERSION, PLURAL, interval=ROUND_INTERVAL, initial_delay=5, id="rebalance")
def rebalance(**kwargs: Any) -> None:
    body: kopf.Body = kwargs["body"]
    name, namespace = kwargs["name"], kwargs["namespace"]
    logger: logging.Logger = kwargs["logger"]
    if is_paused(body.metadata):
        return
    spec = CaxtonClusterSpec.model_validate(dict(kwargs["spec"]))
    status: dict[str, Any] = dict(body.status or {})
    previous: dict[str, Any] = dict(status.get("rebalance") or {})
    names = Names(name, namespace)
    request = balance.pending(_request(body), previous)

    # -- gather
    sts = kubeapi.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{names.statefulset}")
    if sts is None:
        return
    staying = [names.pod(i) for i in range(spec.replicas)]
    api = NodeApi(names)
    reports: dict[str, dict[str, Any]] = {}
    for pod in staying:
        try:
            reports[pod] = api.json(pod, "GET", "/v1/load", timeout=3.0)
        except NodeUnavailable:
            continue
    holder = marks.annotations_of(body).get(marks.UPGRADE, "")
    draining = sorted(marks.draining(body))
    upgrading = (f"CaxtonUpgrade {holder} holds the cluster" if holder and upgrade_active(namespace, holder)
                 else f"draining {', '.join(draining)}" if draining else "")
    backups = (kubeapi.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/caxtonbackups") or {}).get("items") or []
    backing_up = ", ".join(f"CaxtonBackup {b['metadata']['name']} is running" for b in backups
                           if (b.get("spec") or {}).get("clusterRef", {}).get("name") == name
                           and (b.get("status") or {}).get("phase") in (None, "Pending", "Running"))
    members = {m["name"]: m["state"] for m in status.get("members") or []}
    partitioned = bool((status.get("partition") or {}).get("partitioned")) or any(
        members.get(pod, "alive") != "alive" for pod in staying)
    ready = int((sts.get("status") or {}).get("readyReplicas", 0))
    scaling = int(sts["spec"]["replicas"]) != spec.replicas or ready < spec.replicas
    last_move = _epoch(previous.get("lastMoveTime"))
    strategy = str(request.get("strategy") or spec.rebalance.strategy) if request else spec.rebalance.strategy
    dry_run = bool(request and request.get("dryRun"))

    # -- decide
    nodes = [balance.NodeLoad(pod, tuple(balance.AgentLoad(agent, float(rate or 0.0), agent not in r["moving"])
                                         for agent, rate in sorted(r["agentRates"].items())),
                              r.get("memoryFraction")) for pod, r in sorted(reports.items())]
    threshold = balance.parse_threshold(spec.rebalance.threshold)
    plan = balance.plan(nodes, threshold, max_moves=1000 if dry_run else MOVES_PER_ROUND)
    blocked = balance.gates(balance.World(
        strategy=strategy, requested=request is not None, upgrading=upgrading, partitioned=partitioned,
        unanswered=tuple(p for p in staying if p not in reports), scaling=scaling,
        seconds_since_last_move=time.time() - last_move if last_move else None, cooldown=COOLDOWN,
        backing_up=backing_up))
    # A run lasts from its first move until nothing is left to move; a gate may hold it on the way.
    continuing = previous.get("phase") in ("Moving", "Blocked")
    state: dict[str, Any] = {
        "strategy": strategy, "threshold": spec.rebalance.threshold, "imbalance": f"{plan.before:.0%}",
        "nodes": [{"name": n.node, "agents": len(n.agents), "load": plan.loads.get(n.node, 0.0),
                   "messageRate": reports[n.node].get("messageRate"),
                   "memoryFraction": reports[n.node].get("memoryFraction")} for n in nodes],
        "trigger": "Requested" if request else previous.get("trigger") if previous.get("phase") == "Moving"
        else _trigger(status, reports),
        "requestId": request["id"] if request else previous.get("requestId"),
        "lastMoveTime": previous.get("lastMoveTime"),
        "plan": [m.as_dict() for m in plan.moves], "proposed": len(plan.moves),
        # The counts belong to a run: carried while it moves and once it is done, reset by the next one.
        "moving": 0, "done": previous.get("done", 0), "failed": previous.get("failed", 0),
    }
    if dry_run:
        assert request is not None
        state.update(phase="Proposed", dryRun=True,
                     reason=f"dry run: {len(plan.moves)} move(s) would take the imbalance from "
                            f"{plan.before:.0%} to {plan.after:.0%} ({plan.note}); nothing was moved")
        kwargs["patch"].status["rebalance"] = state
        return
    state["dryRun"] = False
    if not plan.moves:
        # Done stays Done (with its counts) until another run starts; nothing to move otherwise is Balanced.
        finished = continuing or request is not None or previous.get("phase") == "Done"
        state.update(phase="Done" if finished else "Balanced", reason=plan.note, plan=[])
        if not finished:
            state.update(done=0, failed=0)
        if continuing or request is not None:
            kopf.event(body, type="Normal", reason="RebalanceDone",
                       message=f"{state['done']} agent(s) moved, {state['failed']} failed; {plan.note}")
        kwargs["patch"].status["rebalance"] = state
        return
    wanted = request is not None or (strategy != "none" and plan.before > threshold)
    if not wanted:
        state.update(phase="Balanced", reason=plan.note, plan=[], proposed=0, done=0, failed=0)
        kwargs["patch"].status["rebalance"] = state
        return
    if blocked and previous.get("phase") == "Moving" and all(g.startswith("cooldown_elapsed") for g in blocked):
        state.update(phase="Moving", reason=f"next round after the cooldown; {blocked[0]}")
        kwargs["patch"].status["rebalance"] = state
        return
    if blocked:
        state.update(phase="Blocked", reason="; ".join(blocked))
        if not continuing:
            state.update(done=0, failed=0)
        if request is not None:
            state["requestId"] = previous.get("requestId")  # not answered: it runs once unblocked
            state["pendingRequest"] = request["id"]
        if previous.get("phase") != "Blocked" or previous.get("reason") != state["reason"]:
            kopf.event(body, type="Normal", reason="RebalanceBlocked", message=state["reason"])
        kwargs["patch"].status["rebalance"] = state
        return

    # -- act: one move at a time, each an Event, progress in status as it goes
    if not continuing:
        state.update(done=0, failed=0)
        kopf.event(body, type="Normal", reason="RebalanceStarted",
                   message=f"{state['trigger']}: imbalance {plan.before:.0%} over {spec.rebalance.threshold}; "
                           f"moving {len(plan.moves)} agent(s) this round")
    state["phase"] = "Moving"
    state["reason"] = f"imbalance {plan.before:.0%}, threshold {spec.rebalance.threshold}"
    with marks.cluster_lock(namespace, name):  # scale-down moves agents too: one mover at a time
        for proposal in plan.moves:
            state["moving"] = 1
            _patch_status(namespace, name, state)
            try:
                agent = api.json(proposal.source, "GET", f"/v1/agents/{proposal.agent}")
                move_agent(api, agent, proposal.source, proposal.target)
            except NodeUnavailable as err:
                state["failed"] += 1
                kopf.event(body, type="Warning", reason="AgentMoveFailed",
                           message=f"{proposal.agent}: {proposal.source} -> {proposal.target}: {err}")
                logger.warning("moving %s failed: %s", proposal.agent, err)
                continue
            finally:
                state["moving"] = 0
            state["done"] += 1
            state["lastMoveTime"] = now_iso()
            kopf.event(body, type="Normal", reason="AgentMoved",
                       message=f"{proposal.agent}: {proposal.source} -> {proposal.target} ({proposal.reason})")
    kwargs["patch"].status["rebalance"] = state
