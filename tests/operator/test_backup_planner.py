"""The CaxtonBackup planner and its status, step by step: pure logic, one table row a case."""

from __future__ import annotations

from typing import Any

import pytest
from caxton_node.backup.destinations import DestinationError, parse
from caxton_operator.backup.planner import (
    NODE_ATTEMPTS,
    PENDING_LIMIT,
    Begin,
    Outcome,
    Snapshot,
    StartVolume,
    World,
    WriteManifest,
    iso,
    plan,
    record,
)
from caxton_operator.models import CaxtonBackupSpec

NOW = 1_800_000_000.0
PODS = ("demo-0", "demo-1", "demo-2")
S3: dict[str, Any] = {"path": "s3://backups/caxton/", "endpoint": "http://127.0.0.1:7070",
                      "s3Credentials": {"secretName": "s3"}}


def spec(**extra: Any) -> CaxtonBackupSpec:
    return CaxtonBackupSpec.model_validate({"clusterRef": {"name": "demo"}, "destination": S3, **extra})


def world(ready: tuple[str, ...] = PODS, **extra: Any) -> World:
    return World(**{"now": NOW, "cluster_exists": True, "replicas": 3, "ready_pods": ready, **extra})


PVC = {"path": "pvc://backup-vol/nightly/"}
RUNNING: dict[str, Any] = {"phase": "Running", "id": "b1", "destination": S3["path"],
           "nodes": [{"name": "demo-0", "phase": "Completed"}, {"name": "demo-1", "phase": "Pending"},
                     {"name": "demo-2", "phase": "Pending"}]}


@pytest.mark.parametrize(("status", "observed", "backup_spec", "phase", "reason", "action"), [
    ({}, world(), spec(), "Pending", "CheckingDestination", Begin()),
    ({}, world(ready=PODS[:2]), spec(), "Pending", "WaitingForPods", None),
    ({}, world(ready=PODS[:2], age=PENDING_LIMIT + 1), spec(), "Failed", "PodsNotReady", None),
    ({}, world(cluster_exists=False), spec(), "Failed", "ClusterNotFound", None),
    ({}, world(credentials_problem="Secret s3 does not exist in this namespace"), spec(), "Failed",
     "CredentialsMissing", None),
    ({}, world(volume_ready=False), spec(destination=PVC), "Pending", "StartingVolume", StartVolume()),
    ({}, world(volume_ready=False, age=PENDING_LIMIT + 1), spec(destination=PVC), "Failed", "VolumeNotReady", None),
    ({}, world(volume_problem="PersistentVolumeClaim backup-vol does not exist"), spec(destination=PVC), "Failed",
     "VolumeNotFound", None),
    ({}, world(), spec(destination=PVC), "Pending", "CheckingDestination", Begin()),
    (RUNNING, world(volume_ready=False), spec(destination=PVC), "Running", "StartingVolume", StartVolume()),
    (RUNNING, world(), spec(), "Running", "BackingUp", Snapshot("demo-1")),
    ({**RUNNING, "nodes": [{**n, "phase": "Completed"} for n in RUNNING["nodes"]]}, world(), spec(), "Running",
     "WritingManifest", WriteManifest(PODS)),
    # A node lost after the backup began still gets its turn (and fails or retries there).
    (RUNNING, world(ready=("demo-0",)), spec(), "Running", "BackingUp", Snapshot("demo-1")),
    ({"phase": "Completed", "id": "b1"}, world(cluster_exists=False), spec(), "Completed", None, None),
    ({"phase": "Failed", "id": "b1", "reason": "S3Error"}, world(), spec(), "Failed", "S3Error", None),
], ids=["start", "wait-pods", "pods-never-ready", "no-cluster", "no-secret", "pvc-volume-starts",
        "pvc-volume-never-ready", "pvc-no-claim", "pvc-ready", "pvc-volume-restarts", "next-node",
        "manifest", "node-lost", "completed-stays", "failed-stays"])
def test_plan(status: dict[str, Any], observed: World, backup_spec: CaxtonBackupSpec, phase: str,
              reason: str | None, action: object) -> None:
    step = plan(backup_spec, "b1", status, observed)
    assert step.status.get("phase", "Pending") == phase
    assert step.status.get("reason") == reason
    assert step.action == action
    assert step.status["id"] == "b1"


def test_id_defaults_to_the_name_and_can_be_given() -> None:
    assert plan(spec(), "nightly", {}, world()).status["id"] == "nightly"
    assert plan(spec(id="backup-20240115-0200"), "x", {}, world()).status["id"] == "backup-20240115-0200"


def test_begin_lists_every_ready_pod_by_ordinal() -> None:
    status = record({"id": "b1"}, Begin(), Outcome(), world(ready=("demo-10", "demo-2", "demo-0")))
    assert status["phase"] == "Running" and status["startedAt"] == iso(NOW)
    assert [n["name"] for n in status["nodes"]] == ["demo-0", "demo-2", "demo-10"]
    assert status["progress"] == "0/3"


@pytest.mark.parametrize(("outcome", "phase", "reason", "message"), [
    (Outcome("BackupExists", "the destination already holds 3 object(s) under id b1"), "Failed", "BackupExists",
     "the destination already holds 3 object(s) under id b1"),
    (Outcome("S3Error", "http://x: InvalidAccessKeyId: The key is unknown"), "Failed", "S3Error",
     "http://x: InvalidAccessKeyId: The key is unknown"),
])
def test_refusals_fail_with_the_destination_s_words(outcome: Outcome, phase: str, reason: str,
                                                     message: str) -> None:
    status = record({"id": "b1", "phase": "Pending"}, Begin(), outcome, world())
    assert (status["phase"], status["reason"], status["message"]) == (phase, reason, message)
    assert status["completedAt"] == iso(NOW)


def test_a_node_result_is_kept_and_progress_counts() -> None:
    details = {"objects": 5, "sizeBytes": 1234, "agents": 2, "queuedMessages": 40}
    status = record(RUNNING, Snapshot("demo-1"), Outcome(details=details), world())
    assert status["nodes"][1] == {"name": "demo-1", "phase": "Completed", **details}
    assert status["progress"] == "2/3" and status["phase"] == "Running"


def test_an_unanswering_node_is_retried_then_fails_the_backup() -> None:
    status = dict(RUNNING)
    for attempt in range(1, NODE_ATTEMPTS):
        status = record(status, Snapshot("demo-1"), Outcome("NodeUnavailable", "demo-1: timed out",
                                                               retryable=True), world())
        assert status["phase"] == "Running" and status["nodes"][1]["attempts"] == attempt
    status = record(status, Snapshot("demo-1"), Outcome("NodeUnavailable", "demo-1: timed out", retryable=True),
                    world())
    assert status["phase"] == "Failed" and status["reason"] == "NodeUnavailable"
    assert "demo-1: timed out" in status["message"]


def test_manifest_completes_with_the_size() -> None:
    status = record(RUNNING, WriteManifest(PODS), Outcome(details={"sizeBytes": 99, "objects": 12}), world())
    assert (status["phase"], status["sizeBytes"], status["objects"]) == ("Completed", 99, 12)


@pytest.mark.parametrize(("url", "expected"), [
    ("s3://backups/caxton/20240115/", ("s3", "backups", "caxton/20240115/")),
    ("s3://backups", ("s3", "backups", "")),
    ("s3://backups//a//b", ("s3", "backups", "a/b/")),
    ("pvc://backup-volume/nightly/", ("pvc", "backup-volume", "nightly/")),
    ("s3://Backups/x", "not an S3 bucket name"),
    ("s3://backups/../x", "'.' and '..' are not allowed"),
    ("pvc://Claim/x", "not a PVC name"),
    ("/var/lib/caxton/", "must be s3://bucket/prefix/ or pvc://claim/path/"),
    ("gs://bucket/x", "must be s3://bucket/prefix/ or pvc://claim/path/"),
])
def test_destinations(url: str, expected: tuple[str, str, str] | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(DestinationError, match=expected.replace(".", r"\.")):
            parse(url)
    else:
        dest = parse(url)
        assert (dest.scheme, dest.where, dest.prefix) == expected


def test_a_retryable_error_before_the_nodes_keeps_the_phase() -> None:
    status = record({"id": "b1", "phase": "Pending"}, Begin(), Outcome("VolumeUnavailable", "pod not ready",
                                                                        retryable=True), world())
    assert (status["phase"], status["message"]) == ("Pending", "pod not ready")
