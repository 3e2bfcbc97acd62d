"""CaxtonCluster: provision on create/update/resume, report status on a timer."""

from __future__ import annotations

import base64
import time
from typing import Any

import kopf

from caxton_operator import kubeapi
from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.resources import secrets, workload
from caxton_operator.resources.naming import Names

GROUP, VERSION, PLURAL = "caxton.dev", "v1alpha1", "caxtonclusters"
PAUSE_ANNOTATION = "caxton.dev/pause-reconciliation"


def _paused(body: kopf.Body) -> bool:
    return (body.metadata.annotations or {}).get(PAUSE_ANNOTATION, "") in ("true", "True", "1")


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile(**kwargs: Any) -> None:
    body: kopf.Body = kwargs["body"]
    patch: kopf.Patch = kwargs["patch"]
    name, namespace, spec = kwargs["name"], kwargs["namespace"], kwargs["spec"]
    if _paused(body):
        patch.status["phase"] = "Paused"
        return
    parsed = CaxtonClusterSpec.model_validate(dict(spec))
    names = Names(name, namespace)
    owner = dict(body)
    kubeapi.create_once(kubeapi.owned(secrets.gossip_secret(names), owner))
    kubeapi.create_once(kubeapi.owned(secrets.token_secret(names), owner))
    if parsed.tls.enabled:
        ca = kubeapi.create_once(kubeapi.owned(secrets.ca_secret(names), owner))
        existing = kubeapi.get(f"/api/v1/namespaces/{namespace}/secrets/{names.tls}")
        kubeapi.apply(kubeapi.owned(secrets.tls_secret(parsed, names, ca, existing), owner))
    for obj in (workload.config_map(parsed, names), workload.peers_service(names), workload.api_service(names),
                workload.pod_disruption_budget(parsed, names), workload.statefulset(parsed, names)):
        kubeapi.apply(kubeapi.owned(obj, owner))
    patch.status["observedGeneration"] = body.metadata.get("generation")
    patch.status["selector"] = ",".join(f"{k}={v}" for k, v in names.selector.items())
    kwargs["logger"].info("applied the resources of %s/%s (%d replicas, version %s)", namespace, name, parsed.replicas,
                parsed.version)


def _members(names: Names, replicas: int) -> list[dict[str, Any]] | None:
    """The membership as one ready node sees it, through the API server's pod proxy."""
    token = kubeapi.get(f"/api/v1/namespaces/{names.namespace}/secrets/{names.token}")
    if token is None:
        return None
    value = base64.b64decode(token["data"]["token"]).decode()
    for ordinal in range(replicas):
        path = f"/api/v1/namespaces/{names.namespace}/pods/{names.pod(ordinal)}:8080/proxy/v1/cluster/members"
        resp = kubeapi.client().raw("GET", path, headers={"X-Caxton-Token": value})
        if resp.status_code == 200:
            members: list[dict[str, Any]] = resp.json()
            return members
    return None


@kopf.timer(GROUP, VERSION, PLURAL, interval=3, initial_delay=1)
def report_status(**kwargs: Any) -> None:
    body: kopf.Body = kwargs["body"]
    patch: kopf.Patch = kwargs["patch"]
    name, namespace, spec = kwargs["name"], kwargs["namespace"], kwargs["spec"]
    parsed = CaxtonClusterSpec.model_validate(dict(spec))
    names = Names(name, namespace)
    sts = kubeapi.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{names.statefulset}")
    ready = int(((sts or {}).get("status") or {}).get("readyReplicas", 0))
    members = _members(names, parsed.replicas) or []
    alive = [m for m in members if m.get("state") == "alive"]
    healthy = ready == parsed.replicas and len(alive) == parsed.replicas
    patch.status["readyReplicas"] = ready
    previous: dict[str, Any] = dict(body.status or {})
    patch.status["currentVersion"] = parsed.version if healthy else previous.get("currentVersion")
    patch.status["phase"] = "Paused" if _paused(body) else ("Running" if healthy else "Provisioning")
    patch.status["members"] = [
        {"name": m["id"], "state": m["state"], "lastSeen": m.get("lastSeenSecondsAgo"), "agents": m.get("agents", 0)}
        for m in members
    ]
    patch.status["conditions"] = [{
        "type": "Ready", "status": "True" if healthy else "False",
        "reason": "AllMembersAlive" if healthy else "WaitingForMembers",
        "message": f"{ready}/{parsed.replicas} pods ready, {len(alive)} members alive",
        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }]
