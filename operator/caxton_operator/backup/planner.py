"""A CaxtonBackup as a state machine: (spec, status, observed world) -> (status, action).

Pending waits for the cluster's pods; Begin checks the destination holds nothing
under the id; Running snapshots one node per step (each node's result goes in
status, so a restarted operator goes on from the next node); WriteManifest ends
in Completed. Anything the destination refuses ends in Failed with the server's
own error as the message. `record` folds an action's outcome into status. Both
are pure; the Kopf handler only gathers and acts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from caxton_node.backup.destinations import DestinationError, check_id, parse

from caxton_operator.models import CaxtonBackupSpec

PHASES = ("Pending", "Running", "Completed", "Failed")
FINISHED = frozenset({"Completed", "Failed"})
NODE_ATTEMPTS = 5  # a node that cannot be snapshotted this many times in a row fails the backup
PENDING_LIMIT = 600.0  # seconds to wait for every pod to be ready before giving up


@dataclass(frozen=True)
class World:
    now: float
    cluster_exists: bool
    replicas: int = 0
    ready_pods: tuple[str, ...] = ()  # the cluster's Ready pods, by ordinal
    credentials_problem: str = ""  # the S3 Secret is missing or lacks a key
    volume_problem: str = ""  # pvc://: the claim does not exist
    volume_ready: bool = True  # pvc://: the pod serving the claim is ready (always True for s3://)
    age: float = 0.0  # seconds since the CaxtonBackup was created


@dataclass(frozen=True)
class Begin:
    """Refuse the id if the destination holds anything under it; otherwise start."""


@dataclass(frozen=True)
class StartVolume:
    """pvc://: run the pod that mounts the claim and serves it (idempotent)."""


@dataclass(frozen=True)
class Snapshot:
    pod: str


@dataclass(frozen=True)
class WriteManifest:
    nodes: tuple[str, ...]


Action = StartVolume | Begin | Snapshot | WriteManifest


@dataclass(frozen=True)
class Outcome:
    """What acting on an action found: an error (`code` and message) or the results."""

    error_code: str = ""
    error: str = ""
    retryable: bool = False  # e.g. the node did not answer: try again next step
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    status: dict[str, Any]
    action: Action | None = None


def backup_id(spec: CaxtonBackupSpec, name: str) -> str:
    return spec.id or name


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _failed(status: dict[str, Any], reason: str, message: str, now: float) -> dict[str, Any]:
    return {**status, "phase": "Failed", "reason": reason, "message": message,
            "completedAt": status.get("completedAt") or iso(now)}


def plan(spec: CaxtonBackupSpec, name: str, status: dict[str, Any], world: World) -> Step:
    status = dict(status)
    phase = status.get("phase") or "Pending"
    if phase in FINISHED:
        return Step(status)
    status.setdefault("id", backup_id(spec, name))
    status.setdefault("destination", spec.destination.path)
    try:
        parse(spec.destination.path)
        check_id(status["id"])
    except DestinationError as err:
        return Step(_failed(status, "InvalidDestination", str(err), world.now))
    if world.credentials_problem:
        return Step(_failed(status, "CredentialsMissing", world.credentials_problem, world.now))
    if not world.cluster_exists:
        return Step(_failed(status, "ClusterNotFound",
                            f"CaxtonCluster {spec.cluster_ref.name} does not exist in this namespace", world.now))
    if world.volume_problem:
        return Step(_failed(status, "VolumeNotFound", world.volume_problem, world.now))
    if not world.volume_ready:
        if world.age > PENDING_LIMIT:
            return Step(_failed(status, "VolumeNotReady", f"the pod serving {spec.destination.path} is not ready "
                                f"after {PENDING_LIMIT:.0f}s", world.now))
        return Step({**status, "phase": phase, "reason": "StartingVolume",
                     "message": f"starting the pod that serves {spec.destination.path}"}, StartVolume())
    if phase == "Pending":
        if len(world.ready_pods) < world.replicas or world.replicas == 0:
            if world.age > PENDING_LIMIT:
                return Step(_failed(status, "PodsNotReady", f"{len(world.ready_pods)}/{world.replicas} pods "
                                    f"ready after {PENDING_LIMIT:.0f}s", world.now))
            return Step({**status, "phase": "Pending", "reason": "WaitingForPods",
                         "message": f"{len(world.ready_pods)}/{world.replicas} pods ready"})
        return Step({**status, "phase": "Pending", "reason": "CheckingDestination", "message": ""}, Begin())
    nodes: list[dict[str, Any]] = status.get("nodes") or []
    for node in nodes:
        if node.get("phase") != "Completed":
            return Step({**status, "reason": "BackingUp", "message": f"snapshotting {node['name']}"},
                        Snapshot(node["name"]))
    return Step({**status, "reason": "WritingManifest", "message": ""},
                WriteManifest(tuple(n["name"] for n in nodes)))


def record(status: dict[str, Any], action: Action, outcome: Outcome, world: World) -> dict[str, Any]:
    """The status once `action` has been carried out with `outcome`."""
    status = dict(status)
    if outcome.error and not outcome.retryable:
        return _failed(status, outcome.error_code or "Error", outcome.error, world.now)
    if outcome.error and not isinstance(action, Snapshot):
        return {**status, "message": outcome.error}  # tried again at the next step
    if isinstance(action, StartVolume):
        return status
    if isinstance(action, Begin):
        pods = sorted(world.ready_pods, key=lambda p: int(p.rsplit("-", 1)[1]))
        return {**status, "phase": "Running", "startedAt": iso(world.now), "reason": "BackingUp", "message": "",
                "nodes": [{"name": pod, "phase": "Pending"} for pod in pods], "progress": f"0/{len(pods)}"}
    if isinstance(action, Snapshot):
        nodes = []
        for node in status.get("nodes") or []:
            if node["name"] == action.pod:
                if outcome.error:
                    attempts = int(node.get("attempts") or 0) + 1
                    if attempts >= NODE_ATTEMPTS:
                        return _failed(status, outcome.error_code or "NodeUnavailable",
                                       f"{action.pod}: {outcome.error} ({attempts} attempts)", world.now)
                    node = {**node, "attempts": attempts, "error": outcome.error}
                else:
                    node = {"name": node["name"], "phase": "Completed", **outcome.details}
            nodes.append(node)
        done = sum(1 for n in nodes if n.get("phase") == "Completed")
        return {**status, "nodes": nodes, "progress": f"{done}/{len(nodes)}"}
    return {**status, "phase": "Completed", "reason": "Completed", "message": "",
            "completedAt": iso(world.now), **outcome.details}
