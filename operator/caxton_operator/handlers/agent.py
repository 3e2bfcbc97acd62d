"""CaxtonAgent: keep each replica running on one node of its cluster.

On every change and every few seconds the handler asks the cluster's nodes which
agents they run, plans (placement.py), deploys and removes through the node API,
and writes the placement and ready count to status. Deleting the CaxtonAgent
removes its replicas from every node (the finalizer waits for that).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import ssl
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import certifi
import httpx
import kopf
from caxton_node.config import parse_duration, parse_size

from caxton_operator import kubeapi, marks, metrics
from caxton_operator.conditions import Conditions
from caxton_operator.handlers.cluster import GROUP, VERSION, cluster_path, is_paused
from caxton_operator.models import CaxtonAgentSpec, CaxtonClusterSpec
from caxton_operator.nodeapi import NodeApi, NodeUnavailable
from caxton_operator.placement import Desired, Plan, plan
from caxton_operator.resources.naming import Names

PLURAL = "caxtonagents"
INTERVAL = 3.0
MAX_MODULE_BYTES = 32 * 2**20
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)  # one placement at a time per agent
_url_trust: ssl.SSLContext | None = None


def trust_module_ca(ca_file: Path) -> None:
    """Trusts the CAs in `ca_file` for `spec.module.url`, besides the public ones: modules are
    often served from inside a company, by a server whose certificate a private CA signed."""
    global _url_trust
    context = ssl.create_default_context(cafile=certifi.where())
    context.load_verify_locations(cafile=str(ca_file))
    _url_trust = context


class ModuleError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def load_module(spec: CaxtonAgentSpec, namespace: str) -> bytes:
    """The module the spec points at, checked against spec.module.sha256."""
    module = spec.module
    if module.config_map_ref is not None:
        ref, kind = module.config_map_ref, "ConfigMap"
        obj = kubeapi.get(f"/api/v1/namespaces/{namespace}/configmaps/{ref.name}")
        raw = (obj or {}).get("binaryData", {}).get(ref.key)
        data = base64.b64decode(raw) if raw is not None else None
        if data is None and ref.key in (obj or {}).get("data", {}):
            data = obj["data"][ref.key].encode()  # type: ignore[index]
    elif module.secret_ref is not None:
        ref, kind = module.secret_ref, "Secret"
        obj = kubeapi.get(f"/api/v1/namespaces/{namespace}/secrets/{ref.name}")
        raw = (obj or {}).get("data", {}).get(ref.key)
        data = base64.b64decode(raw) if raw is not None else None
    else:
        assert module.url is not None
        try:
            resp = httpx.get(module.url, timeout=30.0, follow_redirects=True, verify=_url_trust or True)
            resp.raise_for_status()
        except httpx.HTTPError as err:
            raise ModuleError("ModuleUnavailable", f"cannot fetch {module.url}: {err}") from None
        if len(resp.content) > MAX_MODULE_BYTES:
            raise ModuleError("ModuleTooLarge", f"{module.url} is over {MAX_MODULE_BYTES} bytes")
        data = resp.content
        obj, kind, ref = {}, "", None
    if ref is not None and obj is None:
        raise ModuleError("ModuleUnavailable", f"{kind} {ref.name} not found in {namespace}")
    if ref is not None and data is None:
        raise ModuleError("ModuleUnavailable", f"{kind} {ref.name} has no key {ref.key}")
    assert data is not None
    actual = hashlib.sha256(data).hexdigest()
    if actual != module.sha256:
        raise ModuleError("ChecksumMismatch",
                          f"the module's sha256 is {actual} but spec.module.sha256 says {module.sha256}; "
                          "update one of them")
    return data


def desired_of(name: str, spec: CaxtonAgentSpec) -> Desired:
    limits: dict[str, Any] = {"memory_bytes": parse_size(spec.limits.memory),
                              "deadline_seconds": parse_duration(spec.limits.deadline)}
    if spec.limits.fuel is not None:
        limits["fuel"] = spec.limits.fuel
    return Desired(name, spec.replicas, spec.module.sha256, limits, spec.priority)


def _deploy_limits(spec: CaxtonAgentSpec) -> dict[str, Any]:
    limits: dict[str, Any] = {"memory": spec.limits.memory, "deadline": spec.limits.deadline}
    if spec.limits.fuel is not None:
        limits["fuel"] = spec.limits.fuel
    return limits


def _execute(api: NodeApi, result: Plan, spec: CaxtonAgentSpec, namespace: str, body: kopf.Body,
             logger: logging.Logger) -> None:
    """Deploys first, removes last: a moving replica is never nowhere."""
    if result.deploy or result.replace:
        wasm = load_module(spec, namespace)
        for agent_id, pod in result.replace:
            api.remove(pod, agent_id)
            api.deploy(pod, agent_id, wasm, limits=_deploy_limits(spec), priority=spec.priority)
            logger.info("redeployed %s on %s with the current spec", agent_id, pod)
        for agent_id, pod in result.deploy:
            api.deploy(pod, agent_id, wasm, limits=_deploy_limits(spec), priority=spec.priority)
            kopf.event(body, type="Normal", reason="Placed", message=f"{agent_id} on {pod}")
    for agent_id, pod in result.remove:
        api.remove(pod, agent_id)
        logger.info("removed %s from %s", agent_id, pod)


def _cluster(spec: CaxtonAgentSpec, namespace: str) -> dict[str, Any] | None:
    return kubeapi.get(cluster_path(namespace, spec.cluster_ref.name))


def _nodes(cluster: dict[str, Any], names: Names) -> tuple[list[str], list[str]]:
    """(every node that may hold agents, the nodes that stay): leaving ordinals are still asked."""
    wanted = CaxtonClusterSpec.model_validate(cluster["spec"]).replicas
    sts = kubeapi.get(f"/apis/apps/v1/namespaces/{names.namespace}/statefulsets/{names.statefulset}")
    running = int((sts or {}).get("spec", {}).get("replicas", 0))
    return [names.pod(i) for i in range(max(wanted, running))], [names.pod(i) for i in range(wanted)]


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@kopf.timer(GROUP, VERSION, PLURAL, interval=INTERVAL, initial_delay=1, id="placement-timer")
def place(**kwargs: Any) -> None:
    body: kopf.Body = kwargs["body"]
    patch: kopf.Patch = kwargs["patch"]
    name, namespace = kwargs["name"], kwargs["namespace"]
    spec = CaxtonAgentSpec.model_validate(dict(kwargs["spec"]))
    previous: dict[str, Any] = dict(body.status or {})
    conditions = Conditions(previous.get("conditions"))
    with _locks[f"{namespace}/{name}"]:
        started = time.perf_counter()
        result = _place(body, patch, spec, name, namespace, previous, conditions, kwargs["logger"])
        metrics.reconcile_seconds.labels("CaxtonAgent").observe(time.perf_counter() - started)
    patch.status["conditions"] = conditions.as_list()
    if result is not None:
        ready = result.ready
        patch.status["placement"] = result.placement
        patch.status["readyReplicas"] = ready
        patch.status["phase"] = "Ready" if ready == spec.replicas else (
            "Degraded" if any(p["state"] == "node-unavailable" for p in result.placement) else "Progressing")
        metrics.agent_replicas_ready.labels(namespace, name).set(ready)
    for condition in conditions.changed:
        ok = condition["status"] == "True"
        kopf.event(body, type="Normal" if ok else "Warning", reason=condition["reason"], message=condition["message"])


def _place(body: kopf.Body, patch: kopf.Patch, spec: CaxtonAgentSpec, name: str, namespace: str,
           previous: dict[str, Any], conditions: Conditions, logger: logging.Logger) -> Plan | None:
    cluster = _cluster(spec, namespace)
    if cluster is None:
        patch.status["phase"] = "Pending"
        conditions.set("Ready", False, "ClusterNotFound",
                       f"CaxtonCluster {spec.cluster_ref.name} does not exist in {namespace}")
        return None
    names = Names(spec.cluster_ref.name, namespace)
    api = NodeApi(names)
    nodes, staying = _nodes(cluster, names)
    found = api.agents_by_node(nodes)
    eligible = [pod for pod in staying if pod in found]
    closed = marks.draining(cluster)  # nodes being drained for a restart take no new replicas
    result = plan(desired_of(name, spec), found, eligible, previous.get("placement") or [], time.time(),
                  parse_duration(CaxtonClusterSpec.model_validate(cluster["spec"]).rebalance.replace_after), closed)
    if is_paused(cluster["metadata"]):
        conditions.set("Ready", result.ready == spec.replicas, "ClusterPaused",
                       f"{spec.cluster_ref.name} has reconciliation paused; placement waits "
                       f"({result.ready}/{spec.replicas} running)")
        return result
    try:
        _execute(api, result, spec, namespace, body, logger)
    except ModuleError as err:
        conditions.set("Ready", False, err.reason, str(err))
        return result
    except NodeUnavailable as err:
        conditions.set("Ready", False, "NodeCallFailed", str(err))
        return result
    if result.changes:
        # Report what the nodes now run, not what was asked of them.
        found = api.agents_by_node(nodes)
        result = plan(desired_of(name, spec), found, [p for p in staying if p in found],
                      result.placement, time.time(), float("inf"), closed)
    waiting = [p["replica"] for p in result.placement if p["state"] not in ("running", "suspended")]
    conditions.set("Ready", not waiting, "AllReplicasRunning" if not waiting else "ReplicasNotRunning",
                   f"{result.ready}/{spec.replicas} replicas running"
                   + (f"; waiting: {', '.join(waiting)}" if waiting else ""))
    return result


@kopf.on.delete(GROUP, VERSION, PLURAL)
def remove(**kwargs: Any) -> None:
    spec = CaxtonAgentSpec.model_validate(dict(kwargs["spec"]))
    namespace, name = kwargs["namespace"], kwargs["name"]
    cluster = _cluster(spec, namespace)
    if cluster is None:
        return  # the nodes are gone with their cluster
    names = Names(spec.cluster_ref.name, namespace)
    api = NodeApi(names)
    desired = desired_of(name, spec)
    nodes, _ = _nodes(cluster, names)
    with _locks[f"{namespace}/{name}"]:
        for pod, agents in api.agents_by_node(nodes).items():
            for agent in agents:
                if desired.owns(agent["id"]):
                    api.remove(pod, agent["id"])
    _locks.pop(f"{namespace}/{name}", None)
