"""CaxtonCluster: provision on create/update/resume; observe the world on a timer.

The reconcile handler makes the owned objects match the spec (scale-down moves the
leaving nodes' agents first). The timer computes status from what exists: the
StatefulSet, the members as a node sees them, the certificates (which it renews,
even while reconciliation is paused), and turns every transition into an Event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from caxton_operator import kubeapi, marks, metrics
from caxton_operator.conditions import Conditions, now_iso
from caxton_operator.config import parse_hours
from caxton_operator.handlers import rotation
from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.nodeapi import NodeApi, NodeUnavailable
from caxton_operator.rebalance import move_agents_off
from caxton_operator.resources import secrets, workload
from caxton_operator.resources.naming import Names
from caxton_operator.upgrade.versions import normalize, version_key

GROUP, VERSION, PLURAL = "caxton.dev", "v1alpha1", "caxtonclusters"
PAUSE_ANNOTATION = "caxton.dev/pause-reconciliation"
HIBERNATION_ANNOTATION = "caxton.dev/hibernation"  # "on": no pods, volumes and status kept
STATUS_INTERVAL = 2.0  # seconds between looks at a cluster
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="apply")
# Plain GETs started from inside _POOL tasks: a pool of their own, so no task waits on its own pool.
_LOOKUPS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookup")
MEMBER_EVENT_REASONS = {"alive": "MemberAlive", "suspect": "MemberSuspect", "failed": "MemberFailed",
                        "left": "MemberLeft"}


def is_paused(metadata: Any) -> bool:
    return (metadata.get("annotations") or {}).get(PAUSE_ANNOTATION, "") in ("true", "True", "1")


def is_hibernated(metadata: Any) -> bool:
    return (metadata.get("annotations") or {}).get(HIBERNATION_ANNOTATION, "") == "on"


def cluster_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"


def _sts_path(names: Names) -> str:
    return f"/apis/apps/v1/namespaces/{names.namespace}/statefulsets/{names.statefulset}"


# -- certificates -----------------------------------------------------------------------------------

class LeftoversPending(kopf.TemporaryError):
    """Objects under this cluster's names still belong to a deleted CaxtonCluster of the same name."""


def _owned_by_another(obj: dict[str, Any] | None, uid: str) -> bool:
    return obj is not None and any(ref.get("kind") == "CaxtonCluster" and ref.get("uid") != uid
                                   for ref in obj["metadata"].get("ownerReferences") or [])


def check_leftovers(names: Names, uid: str) -> None:
    """A CaxtonCluster deleted and created again under the same name: the finalizer stopped the
    old nodes, but the garbage collector removes the old Secrets, ConfigMap, Services and budget
    only after the old resource is gone. Adopting them would hand the new cluster the old CA and
    keys, and then lose them to the collector; so the new cluster waits until they are gone."""
    ns = names.namespace
    paths = {f"Secret {n}": f"/api/v1/namespaces/{ns}/secrets/{n}" for n in (names.ca, names.tls, names.gossip,
                                                                               names.token)}
    paths |= {f"ConfigMap {names.config}": f"/api/v1/namespaces/{ns}/configmaps/{names.config}",
              f"Service {names.peers_service}": f"/api/v1/namespaces/{ns}/services/{names.peers_service}",
              f"Service {names.api_service}": f"/api/v1/namespaces/{ns}/services/{names.api_service}",
              f"PodDisruptionBudget {names.statefulset}":
                  f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{names.statefulset}"}
    found = dict(zip(paths, _LOOKUPS.map(kubeapi.get, paths.values()), strict=True))
    leftovers = sorted(what for what, obj in found.items() if _owned_by_another(obj, uid))
    if leftovers:
        raise LeftoversPending(f"waiting for the garbage collector to remove what a deleted CaxtonCluster "
                               f"{names.cluster} owned: {', '.join(leftovers)}", delay=1)


def _operator_ca(names: Names, owner: dict[str, Any]) -> dict[str, Any]:
    """The operator's CA Secret, made once (a rotation replaces it: handlers/rotation.py)."""
    stored = kubeapi.create_once(kubeapi.owned(secrets.ca_secret(names), owner))
    if _owned_by_another(stored, owner["metadata"]["uid"]):
        raise LeftoversPending(f"waiting for the garbage collector to remove Secret {names.ca} of a deleted "
                               f"CaxtonCluster {names.cluster}", delay=1)
    return stored


def ensure_certificates(spec: CaxtonClusterSpec, names: Names, body: kopf.Body,
                        found: dict[str, Any] | None = None) -> rotation.CertificateLook | None:
    """Issues missing certificates, renews those inside renewBefore and carries a CA rotation one
    step further when every node confirmed the last one (`found`: what each node reports)."""
    if not spec.tls.enabled:
        return None
    return rotation.certificates(spec, names, body, found or {}, lambda: _operator_ca(names, dict(body)))


def _certificates_before_pods(spec: CaxtonClusterSpec, names: Names, body: kopf.Body) -> None:
    """The pods mount the certificate Secret: without one (no usable CA yet) they wait."""
    look = ensure_certificates(spec, names, body)
    if look is not None and look.not_after is None:
        raise kopf.TemporaryError(look.plan.message, delay=10)


# -- reconcile ----------------------------------------------------------------------------------------

@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile(**kwargs: Any) -> None:
    body: kopf.Body = kwargs["body"]
    logger: logging.Logger = kwargs["logger"]
    if is_paused(body.metadata):
        logger.info("reconciliation is paused by %s; only certificates are kept up", PAUSE_ANNOTATION)
        return
    started = time.perf_counter()
    with metrics.reconcile_errors.labels("CaxtonCluster").count_exceptions():
        _reconcile(body, kwargs["name"], kwargs["namespace"], CaxtonClusterSpec.model_validate(dict(kwargs["spec"])),
                   logger)
    kwargs["patch"].status["observedGeneration"] = body.metadata.get("generation")
    metrics.reconcile_seconds.labels("CaxtonCluster").observe(time.perf_counter() - started)


def _reconcile(body: kopf.Body, name: str, namespace: str, spec: CaxtonClusterSpec, logger: logging.Logger) -> None:
    names = Names(name, namespace)
    owner = dict(body)
    sts = kubeapi.get(_sts_path(names))
    if sts is None:
        check_leftovers(names, body.metadata["uid"])
    # Everything the StatefulSet's pods mount is independent: made in parallel, one round trip
    # of latency instead of a dozen (users wait for this on every create).
    steps = [
        lambda: kubeapi.create_once(kubeapi.owned(secrets.gossip_secret(names), owner)),
        lambda: kubeapi.create_once(kubeapi.owned(secrets.token_secret(names), owner)),
        lambda: _certificates_before_pods(spec, names, body),
        *(lambda obj=obj: kubeapi.apply(kubeapi.owned(obj, owner)) for obj in (
            workload.config_map(spec, names), workload.peers_service(names), workload.api_service(names),
            workload.pod_disruption_budget(spec, names))),
    ]
    futures = [_POOL.submit(step) for step in steps]
    for future in futures:
        future.result()  # raises what the step raised
    with marks.cluster_lock(namespace, name):  # the roller writes the same StatefulSet
        sts, template_changed = _apply_workload(body, spec, names, logger)
    if sts is None:
        return
    running = workload.Rollout.of(sts).version
    if normalize(spec.version) != normalize(running):
        _roll_version(body, spec, names, running)  # it restarts every node: the new template comes with it
    elif template_changed:
        _roll_template(body, names, running)


def _apply_workload(body: kopf.Body, spec: CaxtonClusterSpec, names: Names,
                    logger: logging.Logger) -> tuple[dict[str, Any] | None, bool]:
    """Scales (moving agents off leaving nodes first) and applies the StatefulSet, keeping the
    version, restart token and partition it has: only the roller changes those. A new pod
    template (config, resources, image) goes in with the partition at the top, so the
    StatefulSet controller restarts nobody; the roller then restarts the nodes drained.
    Returns the StatefulSet as it was, and whether its pod template changed."""
    owner, namespace, name = dict(body), names.namespace, names.cluster
    sts = kubeapi.get(_sts_path(names))
    current = int(sts["spec"]["replicas"]) if sts else 0
    hibernated = is_hibernated(body.metadata)
    if sts is not None and current > spec.replicas and not hibernated:
        leaving = [names.pod(i) for i in range(spec.replicas, current)]
        kopf.event(body, type="Normal", reason="ScalingDown",
                   message=f"moving the agents of {', '.join(leaving)} before removing them")
        try:
            moves = move_agents_off(NodeApi(names), leaving, [names.pod(i) for i in range(spec.replicas)], logger)
        except NodeUnavailable as err:
            raise kopf.TemporaryError(f"scale-down waits: {err}", delay=5) from None
        kopf.event(body, type="Normal", reason="AgentsMoved",
                   message=f"moved {len(moves)} agent(s) off {', '.join(leaving)}")
    elif sts is not None and current > 0 and hibernated:
        # Each node's preStop drain keeps its queues instead of dead-lettering what is left.
        api = NodeApi(names)
        for pod in [names.pod(i) for i in range(current)]:
            try:
                api.call(pod, "POST", "/v1/hibernate", timeout=5.0)
            except NodeUnavailable as err:
                logger.warning("hibernating %s: %s", pod, err)
    elif sts is not None and current < spec.replicas and not hibernated:
        kopf.event(body, type="Normal", reason="ScalingUp", message=f"{current} -> {spec.replicas} nodes")
    rollout = workload.Rollout.of(sts) if sts is not None else workload.Rollout(spec.version)
    desired = workload.statefulset(spec, names, rollout, hibernated=hibernated)
    changed = sts is not None and workload.template_changed(sts, desired)
    if changed:
        holder = marks.annotations_of(body).get(marks.UPGRADE, "")
        if holder and upgrade_active(namespace, holder):
            # Applied now, the controller would restart the pods above the roller's partition undrained.
            raise kopf.TemporaryError(f"the pod template change waits for CaxtonUpgrade {holder} to finish",
                                      delay=15)
        desired = workload.statefulset(spec, names, dataclasses.replace(
            rollout, partition=max(rollout.partition, spec.replicas)), hibernated=hibernated)
    kubeapi.apply(kubeapi.owned(desired, owner))
    if sts is None:
        kopf.event(body, type="Normal", reason="Provisioning",
                  message=f"created the StatefulSet: {spec.replicas} nodes of version {spec.version}")
    logger.info("applied the resources of %s/%s (%d replicas, version %s)", namespace, name, spec.replicas,
                rollout.version)
    return sts, changed


def upgrade_path(namespace: str, name: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/caxtonupgrades"
    return f"{base}/{name}" if name else base


def upgrade_active(namespace: str, name: str) -> bool:
    """The CaxtonUpgrade exists and has not finished (a Failed one holds the cluster until rolled back)."""
    upgrade = kubeapi.get(upgrade_path(namespace, name)) if name else None
    return upgrade is not None and (upgrade.get("status") or {}).get("phase") not in ("Succeeded", "RolledBack")


def _roll_version(body: kopf.Body, spec: CaxtonClusterSpec, names: Names, running: str) -> None:
    """spec.version changed without a CaxtonUpgrade: the same roller does it (drain, gates
    between batches), without a canary hold, through a CaxtonUpgrade the cluster owns."""
    holder = marks.annotations_of(body).get(marks.UPGRADE, "")
    if holder and upgrade_active(names.namespace, holder):
        return  # that upgrade sets spec.version when it is done
    # One per edit (the generation): editing back and forth again is a new upgrade, not a finished one.
    version = normalize(spec.version).replace(".", "-").lower()
    upgrade_name = f"{names.cluster[:40]}-to-{version}"[:55].rstrip("-") + f"-g{body.metadata.get('generation', 0)}"
    if _create_implicit_upgrade(body, names, upgrade_name, {
            "version": spec.version, "reason": f"spec.version of {names.cluster} changed"}):
        kopf.event(body, type="Normal", reason="VersionChange",
                   message=f"spec.version {running} -> {spec.version}: rolling through CaxtonUpgrade {upgrade_name}")


def _create_implicit_upgrade(body: kopf.Body, names: Names, upgrade_name: str, spec: dict[str, Any]) -> bool:
    """A CaxtonUpgrade the cluster owns, without a canary hold; False if this edit made it already."""
    upgrade = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CaxtonUpgrade",
        "metadata": {"name": upgrade_name, "namespace": names.namespace, "labels": {marks.IMPLICIT: "true"}},
        "spec": {"clusterRef": {"name": names.cluster}, "canary": {"duration": "0s"}, "batchSize": 1,
                 "autoRollback": True, **spec},
    }
    try:
        kubeapi.client().create(upgrade_path(names.namespace), kubeapi.owned(upgrade, dict(body)))
    except kubeapi.KubeError as err:
        if err.status == 409:
            return False  # made already for this generation
        raise
    return True


def _roll_template(body: kopf.Body, names: Names, running: str) -> None:
    """The pod template changed (config, resources, image): a rolling restart through the roller,
    as for spec.version, so no node restarts undrained."""
    upgrade_name = f"{names.cluster[:40]}-restart-g{body.metadata.get('generation', 0)}"
    _create_implicit_upgrade(body, names, upgrade_name, {
        "version": running, "restart": True,
        "reason": f"the pod template of {names.cluster} changed (configuration, resources or image)"})
    kopf.event(body, type="Normal", reason="TemplateChange",
               message=f"the pod template changed: restarting the nodes through CaxtonUpgrade {upgrade_name}")


@kopf.on.delete(GROUP, VERSION, PLURAL)
def clean_up(**kwargs: Any) -> None:
    """The finalizer's work: stop the nodes (each drains in its preStop hook) before the
    CaxtonCluster goes, so a new cluster of the same name never meets the old pods. The
    garbage collector then removes the rest (owner references), volumes included."""
    names = Names(kwargs["name"], kwargs["namespace"])
    if kubeapi.get(_sts_path(names)) is not None:
        kubeapi.client().delete(_sts_path(names), {"propagationPolicy": "Foreground"})
    selector = ",".join(f"{k}={v}" for k, v in names.selector.items())
    pods = kubeapi.client().get(f"/api/v1/namespaces/{names.namespace}/pods", labelSelector=selector)["items"]
    if pods:
        raise kopf.TemporaryError(f"waiting for {len(pods)} node pod(s) to stop", delay=2)
    # Foreground: the StatefulSet goes after its pods and volumes, so a namesake starts from nothing.
    if kubeapi.get(_sts_path(names)) is not None:
        raise kopf.TemporaryError(f"waiting for StatefulSet {names.statefulset} and its volumes to go", delay=1)


# -- observe ------------------------------------------------------------------------------------------

def _member_events(api: NodeApi, pods: list[str], body: kopf.Body, cursors: dict[str, float],
                   states: dict[str, str]) -> list[dict[str, Any]]:
    """Membership changes logged by any node since its cursor (a timestamp), posted as Events.

    Every node is asked: a node that crashes and returns within one look has lost its log,
    but its peers remember. Each member's transition is posted once (`states`: the last
    state posted per member), however many nodes saw it.
    """
    seen = []
    for pod in pods:
        try:
            events = api.json(pod, "GET", "/v1/cluster/events", timeout=3.0)
        except NodeUnavailable:
            continue
        fresh = [dict(e, observer=pod) for e in events if e.get("member") and e["ts"] > cursors.get(pod, 0.0)]
        cursors[pod] = max([cursors.get(pod, 0.0), *(e["ts"] for e in fresh)])
        seen += fresh
    changes = []
    for event in sorted(seen, key=lambda e: e["ts"]):
        member, state = event["member"], event["state"]
        if states.get(member) == state:
            continue
        before = states.get(member) or event["previous"]
        states[member] = state
        changes.append(dict(event, previous=before))
        kopf.event(body, type="Warning" if state in ("suspect", "failed") else "Normal",
                   reason=MEMBER_EVENT_REASONS.get(state, "MemberChanged"),
                   message=f"{member}: {before} -> {state} (seen by {event['observer']})")
    return changes


def _members(raw: list[dict[str, Any]], previous: list[dict[str, Any]],
             changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Status entries for the members still in the cluster, each with its last transition."""
    before = {m["name"]: m for m in previous}
    last = {e["member"]: e for e in changes}
    out = []
    for m in raw:
        if m["state"] == "left":
            continue
        entry = {"name": m["id"], "state": m["state"], "lastSeen": m.get("lastSeenSecondsAgo"),
                 "agents": m.get("agents", 0), "version": m.get("version", "")}
        if m["id"] in last:
            entry["previousState"] = last[m["id"]]["previous"]
            entry["lastTransitionTime"] = now_iso(last[m["id"]]["ts"])
        elif m["id"] in before:
            for key in ("previousState", "lastTransitionTime"):
                if key in before[m["id"]]:
                    entry[key] = before[m["id"]][key]
        out.append(entry)
    return out


def _ready_pods(names: Names) -> set[str]:
    selector = ",".join(f"{k}={v}" for k, v in names.selector.items())
    pods = kubeapi.client().get(f"/api/v1/namespaces/{names.namespace}/pods", labelSelector=selector)["items"]
    return {p["metadata"]["name"] for p in pods if any(
        c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])}


def _observe_security(spec: CaxtonClusterSpec, names: Names, body: kopf.Body, patch: kopf.Patch,
                      conditions: Conditions, found: dict[str, Any]) -> None:
    """Certificates (renewal, CA rotation), gossip key and API token rotations: one step each."""
    try:
        look = ensure_certificates(spec, names, body, found)
        if look is None:
            conditions.set("CertificatesReady", True, "TlsDisabled", "tls.enabled is false: peer traffic is plain")
        else:
            certificates = dict(look.status)
            if look.not_after is not None:
                renew_at = look.not_after - dt.timedelta(hours=parse_hours(spec.tls.renew_before))
                certificates |= {"notAfter": f"{look.not_after:%Y-%m-%dT%H:%M:%SZ}",
                                 "renewAt": f"{renew_at:%Y-%m-%dT%H:%M:%SZ}"}
            patch.status["certificates"] = certificates
            plan = look.plan
            if plan.phase == rotation.ca.READY and not plan.held:
                conditions.set("CertificatesReady", True, "Issued",
                               f"{spec.replicas} node certificates; the first expires "
                               f"{look.not_after:%Y-%m-%dT%H:%M:%SZ}" if look.not_after else plan.message)
            else:
                reason = "RotationHeld" if plan.held else {
                    rotation.ca.REFUSED: "CARefused", rotation.ca.MISSING: "CertificateAuthorityMissing"}.get(
                    plan.phase, "Rotating")
                conditions.set("CertificatesReady", plan.phase in rotation.ca.ROTATING and not plan.held, reason,
                               plan.message)
    except LeftoversPending as err:
        conditions.set("CertificatesReady", False, "WaitingForLeftovers", str(err))
    for kind in (rotation.GOSSIP_KEY, rotation.API_TOKEN):
        status = rotation.rotate(kind, spec, names, body, found)
        if status is not None:
            patch.status[kind.status_key] = status


@kopf.timer(GROUP, VERSION, PLURAL, interval=STATUS_INTERVAL, initial_delay=1)
def observe(**kwargs: Any) -> None:
    body: kopf.Body = kwargs["body"]
    patch: kopf.Patch = kwargs["patch"]
    spec = CaxtonClusterSpec.model_validate(dict(kwargs["spec"]))
    names = Names(kwargs["name"], kwargs["namespace"])
    previous: dict[str, Any] = dict(body.status or {})
    paused = is_paused(body.metadata)
    conditions = Conditions(previous.get("conditions"))
    sts = kubeapi.get(_sts_path(names))
    ready = int(((sts or {}).get("status") or {}).get("readyReplicas", 0))
    api = NodeApi(names)
    pods = [names.pod(i) for i in range(max(spec.replicas, int((sts or {}).get("spec", {}).get("replicas", 0))))]
    _observe_security(spec, names, body, patch, conditions, rotation.reports(api, pods) if sts else {})
    answer = api.first_answer(pods, "/v1/cluster/members") if sts else None
    raw_members: list[dict[str, Any]] = answer[1] if answer else []
    changes: list[dict[str, Any]] = []
    partitioned = False
    if answer:
        # Kept in status, so a restarted operator neither repeats nor misses an Event.
        cursors = dict(previous.get("memberEventCursors") or {})
        states = {m["name"]: m["state"] for m in previous.get("members") or []}
        changes = _member_events(api, pods, body, cursors, states)
        patch.status["memberEventCursors"] = cursors
    members = _members(raw_members, previous.get("members") or [], changes)
    alive = sum(1 for m in members if m["state"] == "alive")
    troubled = sorted(m["name"] for m in members if m["state"] in ("suspect", "failed"))
    # A member the others cannot reach while its pod is Ready (its process runs and answers
    # the kubelet) is cut off by the network, not crashed: that is a partition.
    cut_off = sorted(set(troubled) & _ready_pods(names))
    partitioned = bool(cut_off)
    patch.status["partition"] = {"partitioned": partitioned, "unreachable": cut_off,
                                 "observer": answer[0] if answer else None}
    healthy = ready == spec.replicas and alive == spec.replicas

    conditions.set("Ready", healthy, "AllMembersAlive" if healthy else "WaitingForMembers",
                   f"{ready}/{spec.replicas} pods ready, {alive} members alive")
    conditions.set("Progressing", not healthy and not troubled, "Converging" if not healthy else "Stable",
                   f"{spec.replicas} nodes wanted, {ready} ready")
    conditions.set("Degraded", bool(troubled), "MembersUnhealthy" if troubled else "AllMembersHealthy",
                   f"not alive: {', '.join(troubled)}" if troubled else "every member is alive")
    conditions.set("PartitionDetected", partitioned, "Partitioned" if partitioned else "Connected",
                   f"running but unreachable from {answer[0] if answer else '?'}: {', '.join(cut_off)}"
                   if partitioned else "no running member is cut off")
    conditions.set("ReconciliationPaused", paused, "AnnotationSet" if paused else "Reconciling",
                   f"{PAUSE_ANNOTATION} is set: spec changes wait; certificate renewal continues" if paused
                   else "the operator applies spec changes")
    was_running = previous.get("phase") not in (None, "Provisioning")
    phase = "Paused" if paused else "Running" if healthy else "Degraded" if was_running else "Provisioning"
    if is_hibernated(body.metadata):  # stopped on purpose: not degraded; the last members seen are kept
        phase = "Hibernated" if not ready and not (sts or {}).get("status", {}).get("replicas") else "Hibernating"
        members = previous.get("members") or []
        conditions.set("Ready", False, "Hibernated", f"{HIBERNATION_ANNOTATION} is on: no pods run, volumes kept")

    patch.status["readyReplicas"] = ready
    patch.status["selector"] = ",".join(f"{k}={v}" for k, v in names.selector.items())
    patch.status["members"] = members
    patch.status["phase"] = phase
    patch.status["conditions"] = conditions.as_list()
    # What the nodes report, not the spec: mid-upgrade, the oldest version still running.
    versions = {m["version"] for m in members if m["state"] == "alive" and m.get("version")}
    if versions:
        try:
            patch.status["currentVersion"] = min(versions, key=version_key)
        except ValueError:
            patch.status["currentVersion"] = sorted(versions)[0]
    metrics.cluster_members.labels(names.namespace, names.cluster).set(alive)
    if phase != previous.get("phase"):
        kopf.event(body, type="Warning" if phase == "Degraded" else "Normal", reason=f"Phase{phase}",
                   message=f"{previous.get('phase') or 'None'} -> {phase}: {ready}/{spec.replicas} pods ready, "
                           f"{alive} members alive")
    for condition in conditions.changed:
        if condition["type"] in ("Ready", "Degraded", "PartitionDetected", "ReconciliationPaused"):
            bad = (condition["type"] == "Ready") != (condition["status"] == "True")
            kopf.event(body, type="Warning" if bad else "Normal", reason=condition["reason"],
                       message=f"{condition['type']}={condition['status']}: {condition['message']}")
