"""The ConfigMap, Services, StatefulSet and PodDisruptionBudget of a CaxtonCluster."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from caxton_operator.models import CaxtonClusterSpec
from caxton_operator.resources.naming import Names
from caxton_operator.resources.nodeconfig import (
    CONFIG_DIR,
    DATA_DIR,
    GOSSIP_KEY,
    TLS_DIR,
    TOKEN_FILE,
    render,
    restart_hash,
)

Obj = dict[str, Any]
PORTS = (("api", 8080), ("gossip", 7946), ("metrics", 9090))
RESTART_ANNOTATION = "caxton.dev/restarted-by"
# A hash of the pod template without the fields only the roller sets (image tag, restart token):
# when it changes, the nodes need a restart, and the roller (drain, gates) does it, not the
# StatefulSet controller.
TEMPLATE_HASH = "caxton.dev/template-hash"
NODE_UID = 65532  # USER of the node image
BACKUP_MOUNT = "/var/lib/caxton-backup"  # where a pvc:// backup's claim is mounted for a restore


@dataclass(frozen=True)
class Rollout:
    """The StatefulSet fields only the upgrade roller changes: the version the pod template runs,
    its restart token and the RollingUpdate partition. Provisioning keeps what it finds, so it
    never undoes a roll in progress (nor restarts a node undrained)."""

    version: str
    partition: int = 0
    restart_token: str = ""

    @classmethod
    def of(cls, sts: Obj) -> Rollout:
        template = sts["spec"]["template"]
        image = template["spec"]["containers"][0]["image"]
        rolling = (sts["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}
        return cls(version=image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest",
                   partition=int(rolling.get("partition") or 0),
                   restart_token=((template.get("metadata") or {}).get("annotations") or {}).get(
                       RESTART_ANNOTATION, ""))


def _meta(names: Names, name: str, **extra: Any) -> Obj:
    return {"name": name, "namespace": names.namespace, "labels": dict(names.labels), **extra}


def config_map(spec: CaxtonClusterSpec, names: Names) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(names, names.config),
            "data": {"config.yaml": render(spec, names)}}


def peers_service(names: Names) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(names, names.peers_service),
        "spec": {
            "clusterIP": "None",
            # Gossip must find peers before they are Ready: readiness needs the cluster.
            "publishNotReadyAddresses": True,
            "selector": names.selector,
            "ports": [{"name": "gossip-tcp", "port": 7946, "protocol": "TCP"},
                      {"name": "gossip-udp", "port": 7946, "protocol": "UDP"}],
        },
    }


def api_service(names: Names) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(names, names.api_service),
        "spec": {"selector": names.selector,
                 "ports": [{"name": "api", "port": 8080, "targetPort": "api"},
                           {"name": "metrics", "port": 9090, "targetPort": "metrics"}]},
    }


def pod_disruption_budget(spec: CaxtonClusterSpec, names: Names) -> Obj:
    # Keep a quorum through voluntary disruptions (drains, upgrades).
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(names, names.statefulset),
            "spec": {"minAvailable": spec.replicas // 2 + 1, "selector": {"matchLabels": names.selector}}}


def statefulset(spec: CaxtonClusterSpec, names: Names, rollout: Rollout | None = None, *,
                hibernated: bool = False) -> Obj:
    """`hibernated` (`kubectl caxton cluster stop --all`): no pods, every volume kept (scaling
    to zero must not delete the claims, as a scale-down does), brought back as they were."""
    rollout = rollout or Rollout(spec.version)
    config_hash = restart_hash(spec, names)
    # The discovery the chart documents: Prometheus' kubernetes_sd "pod" role keeps pods with these.
    annotations = {"caxton.dev/config-hash": config_hash, "prometheus.io/scrape": "true",
                   "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}
    if rollout.restart_token:
        annotations[RESTART_ANNOTATION] = rollout.restart_token
    storage: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": spec.storage.size}}}
    if spec.storage.storage_class_name:
        storage["storageClassName"] = spec.storage.storage_class_name
    resources = {k: v for k, v in (("requests", spec.resources.requests), ("limits", spec.resources.limits)) if v}
    volumes: list[Obj] = [
        {"name": "config", "configMap": {"name": names.config}},
        {"name": "gossip", "secret": {"secretName": names.gossip, "defaultMode": 0o400}},
        {"name": "api-token", "secret": {"secretName": names.token, "defaultMode": 0o400}},
    ]
    mounts: list[Obj] = [
        {"name": "config", "mountPath": CONFIG_DIR + "/config", "readOnly": True},
        {"name": "gossip", "mountPath": GOSSIP_KEY.rsplit("/", 1)[0], "readOnly": True},
        {"name": "api-token", "mountPath": TOKEN_FILE.rsplit("/", 1)[0], "readOnly": True},
        {"name": "data", "mountPath": DATA_DIR},
    ]
    if spec.tls.enabled:
        volumes.append({"name": "tls", "secret": {"secretName": names.tls, "defaultMode": 0o400}})
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
    container: Obj = {
        "name": "caxton",
        "image": f"{spec.image}:{rollout.version}",
        "command": ["caxton", "server", "start", "--config", f"{CONFIG_DIR}/config/config.yaml"],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            # So `caxton ...` inside the pod (the preStop hook, kubectl exec) finds its own node.
            {"name": "CAXTON_API", "value": "http://$(POD_IP):8080"},
            {"name": "CAXTON_TOKEN_FILE", "value": TOKEN_FILE},
        ],
        # Finish the backlog before SIGTERM; what is left after 20 s goes to the dead-letter queue.
        "lifecycle": {"preStop": {"exec": {"command": ["caxton", "queue", "drain", "--timeout", "20s"]}}},
        "ports": [{"name": n, "containerPort": p} for n, p in PORTS] + [
            {"name": "gossip-udp", "containerPort": 7946, "protocol": "UDP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "api"}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "api"}, "periodSeconds": 5,
                          "failureThreshold": 6},
        "volumeMounts": mounts,
    }
    if resources:
        container["resources"] = resources
    pod_spec: Obj = {
        "terminationGracePeriodSeconds": 30,
        # The image's user (images/Containerfile); fsGroup makes the data volume writable for it.
        "securityContext": {"runAsNonRoot": True, "runAsUser": NODE_UID, "runAsGroup": NODE_UID,
                            "fsGroup": NODE_UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {"labelSelector": {"matchLabels": names.selector},
                                "topologyKey": "kubernetes.io/hostname"},
        }]}},
        "containers": [container],
        "volumes": volumes,
    }
    if spec.bootstrap is not None and spec.bootstrap.from_backup is not None:
        pod_spec["initContainers"] = [restore_container(spec, f"{spec.image}:{rollout.version}")]
        claim = spec.bootstrap.from_backup.destination.path.removeprefix("pvc://")
        if claim != spec.bootstrap.from_backup.destination.path:
            volumes.append({"name": "backup", "persistentVolumeClaim": {"claimName": claim.split("/")[0],
                                                                         "readOnly": True}})
    sts: Obj = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(names, names.statefulset),
        "spec": {
            "serviceName": names.peers_service,
            "replicas": 0 if hibernated else spec.replicas,
            "podManagementPolicy": "Parallel",  # members join in any order; gossip sorts it out
            # A removed ordinal's agents were moved first; its volume must not haunt a later scale-up.
            "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Retain" if hibernated else "Delete",
                                                     "whenDeleted": "Delete"},
            "selector": {"matchLabels": names.selector},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": rollout.partition}},
            "template": {
                "metadata": {"labels": dict(names.labels), "annotations": annotations},
                "spec": pod_spec,
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": dict(names.labels)}, "spec": storage}],
        },
    }
    template = sts["spec"]["template"]
    template["metadata"]["annotations"][TEMPLATE_HASH] = _template_hash(template, spec.image)
    return sts


def _template_hash(template: Obj, image: str) -> str:
    bare = json.loads(json.dumps(template))
    bare["metadata"]["annotations"].pop(RESTART_ANNOTATION, None)
    for container in bare["spec"]["containers"] + bare["spec"].get("initContainers", []):
        container["image"] = image  # the tag is the version: the roller's business
    return hashlib.sha256(json.dumps(bare, sort_keys=True).encode()).hexdigest()[:16]


def template_changed(current: Obj, desired: Obj) -> bool:
    """Whether applying `desired` would give the running StatefulSet `current` a pod template
    that needs the nodes restarted (anything but the version and restart token)."""
    def of(sts: Obj) -> str:
        return str(((sts["spec"]["template"].get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_HASH, ""))
    return of(current) != of(desired)


def restore_container(spec: CaxtonClusterSpec, image: str) -> Obj:
    """`spec.bootstrap.fromBackup`: before its node starts, each pod restores its ordinal's state
    from the backup into its empty volume, after verifying every object of the backup. A pod
    already restored (a restart) is left as it is; a damaged backup keeps the pod in Init."""
    source = spec.bootstrap.from_backup if spec.bootstrap else None
    assert source is not None
    dest = source.destination
    args = ["caxton", "backup", "restore", "--id", source.id, "--target", DATA_DIR, "--destination", dest.path,
            "--replicas", str(spec.replicas), "--pod", "$(POD_NAME)"]
    env: list[Obj] = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    if dest.endpoint:
        args += ["--endpoint", dest.endpoint, "--region", dest.region]
    if dest.s3_credentials is not None:
        ref = dest.s3_credentials
        env += [{"name": variable, "valueFrom": {"secretKeyRef": {"name": ref.secret_name, "key": key}}}
                for variable, key in (("AWS_ACCESS_KEY_ID", ref.access_key_id_key),
                                      ("AWS_SECRET_ACCESS_KEY", ref.secret_access_key_key))]
    mounts: list[Obj] = [{"name": "data", "mountPath": DATA_DIR}]
    if dest.path.startswith("pvc://"):
        args += ["--mount", BACKUP_MOUNT]
        mounts.append({"name": "backup", "mountPath": BACKUP_MOUNT, "readOnly": True})
    return {"name": "restore", "image": image, "command": args, "env": env, "volumeMounts": mounts}
