"""CaxtonBackup: gather, ask the planner (backup/planner.py), act, write status.

Each step is one action: check the destination, snapshot one node through the
pod proxy and store its objects, or write the manifest. The status is written
after every step, so a killed operator goes on from the next node; what a node
stored before the kill is simply stored again under the same keys (the id is
the operator's own, checked free when the backup began).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections import defaultdict
from typing import Any, cast

import kopf
from caxton_node.backup import archive, snapshot
from caxton_node.backup.destinations import (
    DestinationError,
    ObjectStore,
    credentials_from_secret,
    open_store,
    parse,
)
from caxton_node.backup.s3 import S3Client, S3Error

from caxton_operator import kubeapi
from caxton_operator.backup import planner, volume
from caxton_operator.handlers.cluster import GROUP, VERSION, cluster_path
from caxton_operator.models import CaxtonBackupSpec, CaxtonClusterSpec
from caxton_operator.nodeapi import NodeApi, NodeUnavailable
from caxton_operator.resources.naming import Names

PLURAL = "caxtonbackups"
INTERVAL = 2.0
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


def backup_path(namespace: str, name: str = "") -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}" + (f"/{name}" if name else "")


def s3_client(namespace: str, spec: CaxtonBackupSpec) -> S3Client | None:
    """The S3 client for an s3:// destination (None for others); DestinationError if the
    Secret is missing or lacks a key."""
    dest = spec.destination
    if not dest.path.startswith("s3://") or dest.s3_credentials is None or dest.endpoint is None:
        return None
    ref = dest.s3_credentials
    secret = kubeapi.get(f"/api/v1/namespaces/{namespace}/secrets/{ref.secret_name}")
    creds = credentials_from_secret(secret, name=ref.secret_name, id_key=ref.access_key_id_key,
                                    secret_key=ref.secret_access_key_key)
    return S3Client(dest.endpoint, creds, region=dest.region)


def _volume(spec: CaxtonBackupSpec, backup: dict[str, Any]) -> tuple[str, bool]:
    """(problem, ready) of a pvc:// destination: the pod serving its claim, and what the
    scheduler says when the claim does not exist (the operator does not read claims itself)."""
    if not spec.destination.path.startswith("pvc://"):
        return "", True
    meta = backup["metadata"]
    pod = kubeapi.get(f"/api/v1/namespaces/{meta['namespace']}/pods/{volume.pod_name(meta['name'])}")
    if pod is None:
        return "", False
    for condition in (pod.get("status") or {}).get("conditions") or []:
        message = condition.get("message") or ""
        if condition["type"] == "PodScheduled" and condition["status"] == "False" and (
                f'persistentvolumeclaim "{parse(spec.destination.path).where}" not found' in message):
            return message, False
    return "", pod_ready(pod)


def gather(spec: CaxtonBackupSpec, backup: dict[str, Any], now: float,
           age: float) -> tuple[planner.World, S3Client | None]:
    namespace = backup["metadata"]["namespace"]
    problem = ""
    client = None
    try:
        client = s3_client(namespace, spec)
    except DestinationError as err:
        problem = str(err)
    volume_problem, volume_ready = _volume(spec, backup)
    cluster = kubeapi.get(cluster_path(namespace, spec.cluster_ref.name))
    if cluster is None:
        return planner.World(now, False, credentials_problem=problem, age=age, volume_problem=volume_problem,
                             volume_ready=volume_ready), client
    names = Names(spec.cluster_ref.name, namespace)
    selector = ",".join(f"{k}={v}" for k, v in names.selector.items())
    pods = kubeapi.client().get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)["items"]
    ready = tuple(sorted((p["metadata"]["name"] for p in pods if pod_ready(p)),
                         key=lambda n: int(n.rsplit("-", 1)[1])))
    return planner.World(now, True, int(cluster["spec"].get("replicas", 0)), ready, credentials_problem=problem,
                         age=age, volume_problem=volume_problem, volume_ready=volume_ready), client


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions")
               or [])


def _cluster_record(namespace: str, name: str) -> dict[str, Any]:
    cluster = kubeapi.get(cluster_path(namespace, name)) or {}
    return {"name": name, "namespace": namespace, "spec": cluster.get("spec") or {}}


def start_volume(backup: dict[str, Any], spec: CaxtonBackupSpec) -> None:
    namespace = backup["metadata"]["namespace"]
    cluster = kubeapi.get(cluster_path(namespace, spec.cluster_ref.name))
    if cluster is None:
        return
    cluster_spec = CaxtonClusterSpec.model_validate(cluster["spec"])
    pod = volume.volume_pod(backup, parse(spec.destination.path), cluster_spec, Names(spec.cluster_ref.name, namespace),
                            cluster_spec.version)
    try:
        kubeapi.client().create(f"/api/v1/namespaces/{namespace}/pods", pod)
    except kubeapi.KubeError as err:
        if err.status != 409:
            raise


def stop_volume(backup: dict[str, Any]) -> None:
    meta = backup["metadata"]
    kubeapi.client().delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{volume.pod_name(meta['name'])}")


def open_destination(spec: CaxtonBackupSpec, namespace: str, backup_name: str, backup_id: str,
                     client: S3Client | None) -> ObjectStore:
    dest = parse(spec.destination.path)
    if dest.scheme == "pvc":
        token = NodeApi(Names(spec.cluster_ref.name, namespace))._headers()["X-Caxton-Token"]
        return volume.PodStore(namespace, volume.pod_name(backup_name), backup_id, token)
    return open_store(dest, backup_id, s3=client)


def act(action: planner.Action, spec: CaxtonBackupSpec, namespace: str, status: dict[str, Any],
        store: ObjectStore) -> planner.Outcome:
    names = Names(spec.cluster_ref.name, namespace)
    try:
        if isinstance(action, planner.Begin):
            archive.ensure_new(store, status["id"])
            return planner.Outcome()
        if isinstance(action, planner.Snapshot):
            tar = NodeApi(names, timeout=120.0).call(action.pod, "GET", "/v1/backup/snapshot").content
            entries = archive.write_node(store, action.pod, tar, zstd=spec.compress)
            info = json.loads(snapshot.unpack(tar)["node.json"])
            return planner.Outcome(details={
                "objects": len(entries), "sizeBytes": sum(e.size for e in entries),
                "agents": info.get("agents", 0), "queuedMessages": info.get("queuedMessages", 0)})
        extra = [archive.write_extra(store, "cluster.json", _cluster_record(namespace, spec.cluster_ref.name),
                                     kind="cluster", zstd=spec.compress)]
        if spec.include_secrets:
            for secret_name in (names.ca, names.gossip, names.token):
                secret = kubeapi.get(f"/api/v1/namespaces/{namespace}/secrets/{secret_name}")
                if secret is not None:
                    extra.append(archive.write_extra(store, f"secrets/{secret_name}.json",
                                                     {"name": secret_name, "data": secret.get("data") or {}},
                                                     kind="secret", zstd=spec.compress))
        assert isinstance(action, planner.WriteManifest)
        manifest = archive.finish(store, backup_id=status["id"], cluster=_cluster_record(namespace, names.cluster),
                                  nodes=list(action.nodes), created_at=planner.iso(time.time()), extra=extra,
                                  include_secrets=spec.include_secrets)
        return planner.Outcome(details={"sizeBytes": manifest["sizeBytes"], "objects": len(manifest["objects"])})
    except archive.BackupExists as err:
        return planner.Outcome("BackupExists", str(err))
    except S3Error as err:
        return planner.Outcome("S3Error", f"{spec.destination.endpoint}: {err}")
    except NodeUnavailable as err:
        return planner.Outcome("NodeUnavailable", str(err), retryable=True)
    except volume.VolumeUnavailable as err:
        return planner.Outcome("VolumeUnavailable", str(err), retryable=True)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.timer(GROUP, VERSION, PLURAL, interval=INTERVAL, initial_delay=0.5, id="backup-timer")
def run(**kwargs: Any) -> None:
    namespace, name = kwargs["namespace"], kwargs["name"]
    lock = _locks[f"{namespace}/{name}"]
    if not lock.acquire(blocking=False):
        return  # another trigger is already working on this backup
    try:
        _run(namespace, name, kwargs["logger"])
    finally:
        lock.release()


def _run(namespace: str, name: str, logger: logging.Logger) -> None:
    for _ in range(64):  # bounded: one node per step, and a step per call when it is quick
        obj = kubeapi.get(backup_path(namespace, name))
        if obj is None:
            return
        status: dict[str, Any] = dict(obj.get("status") or {})
        spec = CaxtonBackupSpec.model_validate(obj["spec"])
        if status.get("phase") in planner.FINISHED:
            if spec.destination.path.startswith("pvc://"):
                stop_volume(obj)
            return
        created = dt.datetime.fromisoformat(obj["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        now = time.time()
        world, client = gather(spec, obj, now, now - created.timestamp())
        step = planner.plan(spec, name, status, world)
        after = step.status
        if isinstance(step.action, planner.StartVolume):
            start_volume(obj, spec)
        elif step.action is not None:
            store = open_destination(spec, namespace, name, after["id"], client)
            logger.info("%s: %s", name, step.action)
            outcome = act(step.action, spec, namespace, after, store)
            after = planner.record(after, step.action, outcome, world)
        if client is not None:
            client.close()
        if after != status:
            kubeapi.client().patch(backup_path(namespace, name) + "/status", {"status": after})
            _event(obj, status, after)
        if step.action is None or isinstance(step.action, planner.StartVolume) or after == status:
            return


def _event(obj: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> None:
    if before.get("phase") == after.get("phase"):
        return
    body = kopf.Body(cast("kopf.RawBody", obj))
    if after.get("phase") == "Failed":
        kopf.event(body, type="Warning", reason="BackupFailed", message=f"{after.get('reason')}: "
                   f"{after.get('message')}")
    elif after.get("phase") == "Completed":
        kopf.event(body, type="Normal", reason="BackupCompleted",
                   message=f"{after['id']}: {after.get('sizeBytes', 0)} bytes in {after.get('objects', 0)} objects")
    elif after.get("phase") == "Running":
        kopf.event(body, type="Normal", reason="BackupStarted", message=f"{after['id']} to {after['destination']}")
