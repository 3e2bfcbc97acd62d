"""What a cluster's StatefulSet looks like when it restores from a backup or hibernates:
pure manifest builders, checked field by field."""

from __future__ import annotations

from typing import Any

from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.resources import workload
from caxton_operator.resources.naming import Names

NAMES = Names("demo", "prod")
S3 = {"path": "s3://backups/caxton/", "endpoint": "https://s3.example.com", "region": "eu-west-1",
      "s3Credentials": {"secretName": "s3-creds"}}


def sts(**spec: Any) -> dict[str, Any]:
    return workload.statefulset(CaxtonClusterSpec.model_validate({"version": "1.2.0", **spec}), NAMES)


def test_no_bootstrap_no_init_container() -> None:
    assert "initContainers" not in sts()["spec"]["template"]["spec"]


def test_restoring_pods_verify_and_restore_their_ordinal_first() -> None:
    pod = sts(replicas=3, bootstrap={"fromBackup": {"id": "b1", "destination": S3}})["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == "ghcr.io/caxton/caxton-node:1.2.0"
    assert init["command"] == ["caxton", "backup", "restore", "--id", "b1", "--target", "/var/lib/caxton",
                               "--destination", "s3://backups/caxton/", "--replicas", "3", "--pod", "$(POD_NAME)",
                               "--endpoint", "https://s3.example.com", "--region", "eu-west-1"]
    env = {e["name"]: e["valueFrom"] for e in init["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "s3-creds", "key": "accessKeyId"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "s3-creds", "key": "secretAccessKey"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert init["volumeMounts"] == [{"name": "data", "mountPath": "/var/lib/caxton"}]


def test_restoring_from_a_volume_mounts_the_claim_read_only() -> None:
    pod = sts(bootstrap={"fromBackup": {"id": "b1", "destination": {"path": "pvc://backup-vol/nightly/"}}})[
        "spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"][-2:] == ["--mount", workload.BACKUP_MOUNT]
    assert {"name": "backup", "mountPath": workload.BACKUP_MOUNT, "readOnly": True} in init["volumeMounts"]
    assert {"name": "backup", "persistentVolumeClaim": {"claimName": "backup-vol", "readOnly": True}} in pod["volumes"]
    assert not any(m["name"] == "backup" for m in pod["containers"][0]["volumeMounts"])


def test_hibernation_scales_to_zero_and_keeps_the_volumes() -> None:
    spec = CaxtonClusterSpec.model_validate({"version": "1.2.0", "replicas": 3})
    running = workload.statefulset(spec, NAMES)["spec"]
    hibernated = workload.statefulset(spec, NAMES, hibernated=True)["spec"]
    assert (running["replicas"], running["persistentVolumeClaimRetentionPolicy"]["whenScaled"]) == (3, "Delete")
    assert (hibernated["replicas"], hibernated["persistentVolumeClaimRetentionPolicy"]["whenScaled"]) == (0, "Retain")
    assert hibernated["template"] == running["template"]  # nothing restarts because of it
