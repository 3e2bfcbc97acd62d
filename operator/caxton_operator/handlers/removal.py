"""`kubectl caxton cluster remove --node X [--force]` for a node that is not the highest
ordinal (the highest is a plain scale-down): the node is replaced by a fresh member.

The request is the REMOVE annotation ({id, node, force}); progress and the outcome are in
`status.removal` under its id, so a restarted operator picks up where it stopped:

- Draining: the node takes no new agents (the draining mark) and every agent it runs moves
  to the others through the one move path (rebalance.move_agent), queues and state with them.
  With `force` the node is not asked: it is gone; every other member forgets it (force-leave).
- Replacing: its volume (PVC) and pod are deleted; the StatefulSet makes the pod again with
  an empty volume, and it joins as a new member.
- Done once it is back, alive and Ready; the draining mark goes, so rebalancing fills it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import kopf

from caxton_operator import kubeapi, marks
from caxton_operator.conditions import now_iso
from caxton_operator.handlers.cluster import GROUP, PLURAL, VERSION, cluster_path, is_paused
from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.nodeapi import NodeApi, NodeUnavailable
from caxton_operator.rebalance import move_agents_off
from caxton_operator.resources.naming import Names

REMOVE = "caxton.dev/remove-node"


def _request(body: kopf.Body) -> dict[str, Any] | None:
    raw = marks.annotations_of(body).get(REMOVE, "")
    try:
        request = json.loads(raw) if raw else None
    except ValueError:
        return None
    return request if isinstance(request, dict) and request.get("id") and request.get("node") else None


def _set_draining(namespace: str, name: str, node: str, on: bool) -> None:
    cluster = kubeapi.get(cluster_path(namespace, name)) or {}
    pods = marks.draining(cluster)
    pods = pods | {node} if on else pods - {node}
    kubeapi.client().patch(cluster_path(namespace, name),
                           {"metadata": {"annotations": {marks.DRAINING: ",".join(sorted(pods)) or None}}})


def _pod(namespace: str, pod: str) -> dict[str, Any] | None:
    return kubeapi.get(f"/api/v1/namespaces/{namespace}/pods/{pod}")


@kopf.timer(GROUP, VERSION, PLURAL, interval=3.0, initial_delay=2, id="removal")
def remove_node(**kwargs: Any) -> None:
    body: kopf.Body = kwargs["body"]
    name, namespace = kwargs["name"], kwargs["namespace"]
    logger: logging.Logger = kwargs["logger"]
    request = _request(body)
    if request is None or is_paused(body.metadata):
        return
    status: dict[str, Any] = dict(body.status or {})
    previous: dict[str, Any] = dict(status.get("removal") or {})
    if previous.get("requestId") == request["id"] and previous.get("phase") in ("Done", "Failed"):
        return
    spec = CaxtonClusterSpec.model_validate(dict(kwargs["spec"]))
    names = Names(name, namespace)
    node, force = str(request["node"]), bool(request.get("force"))
    state = previous if previous.get("requestId") == request["id"] else {
        "requestId": request["id"], "node": node, "force": force, "phase": "Draining", "moved": 0}
    patch: kopf.Patch = kwargs["patch"]
    others = [names.pod(i) for i in range(spec.replicas) if names.pod(i) != node]
    if node not in [names.pod(i) for i in range(spec.replicas)] or not others:
        state.update(phase="Failed", message=f"{node} is not a node of {name} that can be replaced")
        patch.status["removal"] = state
        return
    api = NodeApi(names)

    if state["phase"] == "Draining":
        _set_draining(namespace, name, node, True)
        if force:
            forgot = []
            for other in others:
                try:
                    api.call(other, "POST", f"/v1/cluster/members/{node}/force-leave")
                    forgot.append(other)
                except NodeUnavailable as err:
                    logger.info("force-leave of %s on %s: %s", node, other, err)
            state["message"] = (f"forced: {node} was not drained; {len(forgot)} member(s) forgot it "
                                f"({', '.join(forgot) or 'none saw it failed'})")
        else:
            try:
                moves = move_agents_off(api, [node], others, logger)
            except NodeUnavailable as err:
                state["message"] = f"draining waits: {err}"
                patch.status["removal"] = state
                raise kopf.TemporaryError(state["message"], delay=5) from None
            state["moved"] = len(moves)
            state["message"] = f"drained: moved {len(moves)} agent(s) to {', '.join(others)}"
            for move in moves:
                kopf.event(body, type="Normal", reason="AgentMoved",
                           message=f"{move.agent}: {move.source} -> {move.target} (removing {node})")
        pod = _pod(namespace, node)
        state["replacingSince"] = now_iso()  # the pod made after this is the fresh member
        pvc = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/data-{node}"
        if kubeapi.get(pvc) is not None:
            kubeapi.client().delete(pvc)
        if pod is not None:
            kubeapi.client().delete(f"/api/v1/namespaces/{namespace}/pods/{node}")
        state["phase"] = "Replacing"
        state["message"] += f"; wiping {node}'s volume: it rejoins as a fresh member"
        kopf.event(body, type="Normal", reason="NodeReplacing", message=state["message"])
        patch.status["removal"] = state
        return

    if state["phase"] == "Replacing":
        pod = _pod(namespace, node)
        fresh = pod is not None and pod["metadata"].get("creationTimestamp", "") >= state.get("replacingSince", "") \
            and not pod["metadata"].get("deletionTimestamp") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])
        members = {m["name"]: m["state"] for m in status.get("members") or []}
        if not fresh or members.get(node) != "alive":
            return
        _set_draining(namespace, name, node, False)
        state["phase"] = "Done"
        state["message"] = (f"{node} replaced: {state.get('moved', 0)} agent(s) moved off, volume wiped, "
                            f"rejoined as a fresh member" + (" (forced, not drained)" if force else ""))
        kopf.event(body, type="Normal", reason="NodeReplaced", message=state["message"])
        patch.status["removal"] = state
