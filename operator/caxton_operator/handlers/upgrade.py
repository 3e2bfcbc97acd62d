"""CaxtonUpgrade: gather the world, ask the planner, write status, act, post Events.

Thin on purpose: every decision is in upgrade/planner.py. Each look gathers the
StatefulSet, the pods, the members as every node sees them, the nodes' agents and
backlog, and (while the canary is judged) every node's /metrics through the pod
proxy. The planner's status is written *before* its actions are carried out, and
every action is idempotent, so a killed operator picks up from status.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import kopf
from prometheus_client.parser import text_string_to_metric_families

from caxton_operator import kubeapi, marks, metrics
from caxton_operator.handlers.cluster import GROUP, VERSION, cluster_path, upgrade_active, upgrade_path
from caxton_operator.models import CaxtonClusterSpec, CaxtonUpgradeSpec
from caxton_operator.nodeapi import NodeApi, NodeUnavailable
from caxton_operator.rebalance import balance_onto, move_agents_off
from caxton_operator.resources import workload
from caxton_operator.resources.naming import Names
from caxton_operator.upgrade import planner
from caxton_operator.upgrade.world import ClusterView, MemberView, MetricSample, PodView, StatefulSetView, World

PLURAL = "caxtonupgrades"
INTERVAL = 2.0
BASELINE = "caxton.dev/gate-baseline"  # the counters the metric gates compare against (JSON)
REQUESTS = {"promote": "caxton.dev/promote", "rollback": "caxton.dev/rollback"}
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="upgrade-look")


# -- gathering ----------------------------------------------------------------------------------------------

def _pod_view(pod: dict[str, Any]) -> PodView:
    meta, status = pod["metadata"], pod.get("status") or {}
    container = (status.get("containerStatuses") or [{}])[0]
    image = pod["spec"]["containers"][0]["image"]
    waiting = (container.get("state") or {}).get("waiting") or {}
    return PodView(
        name=meta["name"], ordinal=int(meta["name"].rsplit("-", 1)[1]),
        revision=(meta.get("labels") or {}).get("controller-revision-hash", ""),
        version=image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest",
        ready=any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []),
        restarts=int(container.get("restartCount") or 0),
        crash_looping=waiting.get("reason") == "CrashLoopBackOff",
        terminating=meta.get("deletionTimestamp") is not None,
    )


def metric_sample(text: str) -> MetricSample:
    """The counters the gates need, from a node's Prometheus exposition."""
    handled = crashes = dead = 0.0
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "caxton_agent_message_latency_seconds_count":
                handled = s.value
            elif s.name == "caxton_agent_message_latency_seconds_bucket":
                buckets.append((float(s.labels["le"]), s.value))
            elif s.name == "caxton_agent_crashes_total":
                crashes += s.value
            elif s.name == "caxton_dead_letters_total" and s.labels.get("reason") != "agent_failed":
                dead += s.value
    return MetricSample(handled, tuple(sorted(buckets)), crashes, dead)


def _ask_node(api: NodeApi, pod: str, with_metrics: bool) -> dict[str, Any]:
    found: dict[str, Any] = {}
    try:
        found["members"] = api.json(pod, "GET", "/v1/cluster/members", timeout=3.0)
        queue = api.json(pod, "GET", "/v1/queue", timeout=3.0)
        found["agents"] = len(queue.get("agents") or {})
        found["backlog"] = int(queue.get("depth", 0)) + int(queue.get("outbound", 0))
        if with_metrics:
            path = f"/api/v1/namespaces/{api.names.namespace}/pods/{pod}:9090/proxy/metrics"
            resp = kubeapi.client().raw("GET", path, timeout=3.0)
            if resp.status_code == 200:
                found["metrics"] = metric_sample(resp.text)
    except (NodeUnavailable, OSError, ValueError):
        pass
    return found


def gather(upgrade: dict[str, Any], spec: CaxtonUpgradeSpec, names: Names, now: float) -> World:
    cluster_obj = kubeapi.get(cluster_path(names.namespace, names.cluster))
    annotations = marks.annotations_of(upgrade)
    requests = frozenset(k for k, a in REQUESTS.items() if annotations.get(a, "").lower() not in ("", "false"))
    baseline = {pod: MetricSample.from_json(raw) for pod, raw in json.loads(annotations.get(BASELINE) or "{}").items()}
    if cluster_obj is None:
        return World(now, None, None, requests=requests)
    holder = marks.annotations_of(cluster_obj).get(marks.UPGRADE, "")
    cluster = ClusterView(
        names.cluster, str(cluster_obj["spec"].get("version", "")), int(cluster_obj["spec"].get("replicas", 0)),
        holder=holder, holder_active=holder == upgrade["metadata"]["name"] or upgrade_active(names.namespace, holder))
    sts_obj = kubeapi.get(f"/apis/apps/v1/namespaces/{names.namespace}/statefulsets/{names.statefulset}")
    if sts_obj is None:
        return World(now, cluster, None, requests=requests)
    rollout = workload.Rollout.of(sts_obj)
    sts_status = sts_obj.get("status") or {}
    sts = StatefulSetView(
        replicas=int(sts_obj["spec"]["replicas"]), version=rollout.version, restart_token=rollout.restart_token,
        partition=rollout.partition, update_revision=sts_status.get("updateRevision", ""),
        current_revision=sts_status.get("currentRevision", ""),
        settled=int(sts_status.get("observedGeneration") or 0) >= int(sts_obj["metadata"].get("generation") or 0))
    selector = ",".join(f"{k}={v}" for k, v in names.selector.items())
    pod_objs = kubeapi.client().get(f"/api/v1/namespaces/{names.namespace}/pods", labelSelector=selector)["items"]
    phase = (upgrade.get("status") or {}).get("phase")
    with_metrics = phase in ("Canary", "Monitoring")
    api = NodeApi(names, timeout=5.0)
    running = [p["metadata"]["name"] for p in pod_objs if (p.get("status") or {}).get("podIP")]
    answers = dict(zip(running, _POOL.map(lambda pod: _ask_node(api, pod, with_metrics), running), strict=True))
    pods = []
    for obj in pod_objs:
        view = _pod_view(obj)
        answer = answers.get(view.name, {})
        pods.append(PodView(**{**view.__dict__, "agents": answer.get("agents"), "backlog": answer.get("backlog")}))
    views = [a["members"] for a in answers.values() if "members" in a]
    members = None
    agree = None
    if views:
        first = views[0]
        members = tuple(MemberView(m["id"], m["state"], str(m.get("version", ""))) for m in first)
        alive_sets = [frozenset((m["id"], m.get("version")) for m in v if m["state"] == "alive") for v in views]
        agree = len(set(alive_sets)) == 1 and len(views) == len([p for p in pods if p.ready])
    return World(now=now, cluster=cluster, sts=sts, pods=tuple(sorted(pods, key=lambda p: p.ordinal)),
                 members=members, views_agree=agree,
                 metrics={pod: a["metrics"] for pod, a in answers.items() if "metrics" in a},
                 baseline=baseline, requests=requests)


# -- acting --------------------------------------------------------------------------------------------------------

class Actor:
    def __init__(self, upgrade: dict[str, Any], names: Names, logger: logging.Logger) -> None:
        self.upgrade = upgrade
        self.name = upgrade["metadata"]["name"]
        self.names = names
        self.log = logger
        self.api = NodeApi(names)

    @property
    def cluster_path(self) -> str:
        return cluster_path(self.names.namespace, self.names.cluster)

    @property
    def sts_path(self) -> str:
        return f"/apis/apps/v1/namespaces/{self.names.namespace}/statefulsets/{self.names.statefulset}"

    def _patch_cluster_annotation(self, key: str, value: Callable[[dict[str, Any]], str | bool | None]) -> None:
        """Sets annotation `key` to value(cluster) (False: leave it) with optimistic concurrency,
        retrying when someone else changed the cluster in between."""
        for _ in range(5):
            cluster = kubeapi.get(self.cluster_path)
            if cluster is None:
                return
            wanted = value(cluster)
            if wanted is False or marks.annotations_of(cluster).get(key) == wanted:
                return
            try:
                kubeapi.client().patch(self.cluster_path, {"metadata": {
                    "resourceVersion": cluster["metadata"]["resourceVersion"], "annotations": {key: wanted}}})
                return
            except kubeapi.KubeError as err:
                if err.status != 409:
                    raise
        raise kopf.TemporaryError(f"CaxtonCluster {self.names.cluster} keeps changing; retrying", delay=1)

    def _acquire(self, cluster: dict[str, Any]) -> str | bool:
        holder = marks.annotations_of(cluster).get(marks.UPGRADE, "")
        if holder and holder != self.name and upgrade_active(self.names.namespace, holder):
            return False  # taken meanwhile: the planner will see it and wait
        return self.name

    def _release(self, cluster: dict[str, Any]) -> bool | None:
        return None if marks.annotations_of(cluster).get(marks.UPGRADE) == self.name else False

    def _set_draining(self, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> None:
        self._patch_cluster_annotation(marks.DRAINING, lambda cluster: ",".join(
            sorted((marks.draining(cluster) | set(add)) - set(remove))) or None)

    def _ready_pods(self) -> list[str]:
        selector = ",".join(f"{k}={v}" for k, v in self.names.selector.items())
        pods = kubeapi.client().get(f"/api/v1/namespaces/{self.names.namespace}/pods", labelSelector=selector)
        return sorted((p["metadata"]["name"] for p in pods["items"] if any(
            c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])),
            key=lambda n: int(n.rsplit("-", 1)[1]))

    def do(self, action: planner.Action) -> None:
        ns = self.names.namespace
        if isinstance(action, planner.Acquire):
            self._patch_cluster_annotation(marks.UPGRADE, self._acquire)
        elif isinstance(action, planner.Release):
            self._patch_cluster_annotation(marks.UPGRADE, self._release)
        elif isinstance(action, planner.SetTemplate):
            cluster = kubeapi.get(self.cluster_path)
            assert cluster is not None
            image = CaxtonClusterSpec.model_validate(cluster["spec"]).image
            with marks.cluster_lock(ns, self.names.cluster):
                kubeapi.client().patch(self.sts_path, {"spec": {
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": action.partition}},
                    "template": {"metadata": {"annotations": {
                        workload.RESTART_ANNOTATION: action.restart_token or None}},
                        "spec": {"containers": [{"name": "caxton", "image": f"{image}:{action.version}"}]}}}},
                    kind="strategic")
        elif isinstance(action, planner.SetPartition):
            with marks.cluster_lock(ns, self.names.cluster):
                kubeapi.client().patch(self.sts_path, {"spec": {"updateStrategy": {
                    "type": "RollingUpdate", "rollingUpdate": {"partition": action.partition}}}}, kind="strategic")
        elif isinstance(action, planner.Drain):
            self._set_draining(add=action.pods)
            staying = [p for p in self._ready_pods() if p not in action.pods]
            try:
                moves = move_agents_off(self.api, list(action.pods), staying, self.log)
            except NodeUnavailable as err:
                self.log.warning("draining %s: %s", ", ".join(action.pods), err)
                return
            if moves:
                self.log.info("drained %s: moved %d agent(s)", ", ".join(action.pods), len(moves))
        elif isinstance(action, planner.Undrain):
            self._set_draining(remove=action.pods)
            try:
                moves = balance_onto(self.api, [p for p in action.pods if p in self._ready_pods()],
                                     self._ready_pods(), self.log)
            except NodeUnavailable as err:
                self.log.warning("placing agents on %s: %s", ", ".join(action.pods), err)
                return
            if moves:
                self.log.info("moved %d agent(s) onto %s", len(moves), ", ".join(action.pods))
        elif isinstance(action, planner.DeletePod):
            kubeapi.client().delete(f"/api/v1/namespaces/{ns}/pods/{action.pod}")
        elif isinstance(action, planner.SetClusterVersion):
            kubeapi.client().patch(self.cluster_path, {"spec": {"version": action.version}})
        elif isinstance(action, planner.SaveBaseline):
            baseline = json.dumps({pod: s.to_json() for pod, s in action.samples.items()}, separators=(",", ":"))
            kubeapi.client().patch(upgrade_path(ns, self.name), {"metadata": {"annotations": {BASELINE: baseline}}})


# -- the handler ---------------------------------------------------------------------------------------------------

def _status_patch(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """A merge patch from `before` to `after`: keys that went are set to null."""
    patch: dict[str, Any] = {k: None for k in before if k not in after}
    patch.update({k: v for k, v in after.items() if before.get(k) != v})
    return patch


def _record_phase(namespace: str, name: str, cluster: str, phase: str) -> None:
    for each in planner.PHASES:
        metrics.upgrade_phase.labels(namespace, name, cluster, each).set(1 if each == phase else 0)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@kopf.timer(GROUP, VERSION, PLURAL, interval=INTERVAL, initial_delay=1, id="upgrade-timer")
def roll(**kwargs: Any) -> None:
    namespace, name = kwargs["namespace"], kwargs["name"]
    logger: logging.Logger = kwargs["logger"]
    lock = _locks[f"{namespace}/{name}"]
    if not lock.acquire(blocking=False):
        return  # another trigger is already looking at this upgrade
    try:
        started = time.perf_counter()
        with metrics.reconcile_errors.labels("CaxtonUpgrade").count_exceptions():
            _roll(namespace, name, logger)
        metrics.reconcile_seconds.labels("CaxtonUpgrade").observe(time.perf_counter() - started)
    finally:
        lock.release()


def _roll(namespace: str, name: str, logger: logging.Logger) -> None:
    for _ in range(4):  # a few steps in a row when each one is done at once
        upgrade = kubeapi.get(upgrade_path(namespace, name))
        if upgrade is None:
            return
        spec = CaxtonUpgradeSpec.model_validate(upgrade["spec"])
        names = Names(spec.cluster_ref.name, namespace)
        before: dict[str, Any] = dict(upgrade.get("status") or {})
        if before.get("phase") in planner.FINISHED | {"Failed"}:
            cluster = kubeapi.get(cluster_path(namespace, names.cluster))
            if cluster is None or marks.annotations_of(cluster).get(marks.UPGRADE) != name:
                _record_phase(namespace, name, names.cluster, before["phase"])
                return
        world = gather(upgrade, spec, names, time.time())
        settings = planner.Settings(name, implicit=(upgrade["metadata"].get("labels") or {}).get(marks.IMPLICIT)
                                    == "true")
        decision = planner.plan(settings, spec, before, world)
        after = dict(decision.status, observedGeneration=upgrade["metadata"].get("generation"))
        patch = _status_patch(before, after)
        if patch:  # written before acting: a restarted operator resumes from here
            kubeapi.client().patch(upgrade_path(namespace, name) + "/status", {"status": patch})
        actor = Actor(upgrade, names, logger)
        for action in decision.actions:
            logger.info("%s: %s", name, action)
            actor.do(action)
        for event in decision.events:
            kopf.event(kopf.Body(cast("kopf.RawBody", upgrade)), type=event.type, reason=event.reason,
                       message=event.message)
        _record_phase(namespace, name, names.cluster, after.get("phase", "Pending"))
        moved = (before.get("phase"), before.get("step")) != (after.get("phase"), after.get("step"))
        if not moved:
            return
