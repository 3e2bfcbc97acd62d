"""`backup create|list|verify|restore|delete`: the runbook's Backup and Recovery.

`kubectl caxton backup create` makes a CaxtonBackup (the operator takes it);
`restore` makes a new CaxtonCluster with `spec.bootstrap.fromBackup` (each pod
restores its own node before it starts). `verify` and `restore` read the backup
themselves first, with the credentials the CaxtonBackup names, and refuse on any
problem before anything is written. `caxton backup restore --target DIR` (direct)
restores one node's data directory; the restoring pods run exactly that.

Exit codes: 0 done, 1 refused or the backup failed, 2 bad input or unreachable,
3 a problem found in the backup or timed out, 4 not found.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caxton_cli.declarative import _api_errors
from caxton_cli.errors import CommandError
from caxton_cli.output import emit

DELETE_WAIT = 60.0  # seconds `backup delete` waits for the object to be gone

if TYPE_CHECKING:
    from caxton_kube.oneshot import OneShotKube
    from caxton_node.backup.destinations import ObjectStore

API = "/apis/caxton.dev/v1alpha1/namespaces"
MANAGER = "kubectl-caxton"


@dataclass
class Where:
    """The namespace a kubectl-mode backup verb acts in, and its API client."""

    kube: OneShotKube
    namespace: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Where:
        from caxton_kube.kubeconfig import KubeconfigError
        from caxton_kube.oneshot import OneShotKube

        try:
            kube = OneShotKube(args.kubeconfig, context=getattr(args, "context", None))
        except (KubeconfigError, OSError, ValueError) as err:
            raise CommandError(f"cannot use the kubeconfig: {err}", exit_code=2) from None
        return cls(kube, args.namespace or kube.namespace)

    def path(self, plural: str, name: str = "") -> str:
        return f"{API}/{self.namespace}/{plural}" + (f"/{name}" if name else "")


def _default_id() -> str:
    return time.strftime("backup-%Y%m%d-%H%M%S", time.gmtime())


def _destination(args: argparse.Namespace) -> dict[str, Any]:
    from caxton_node.backup.destinations import DestinationError, parse

    try:
        parse(args.destination)
    except DestinationError as err:
        raise CommandError(str(err), exit_code=2) from None
    dest: dict[str, Any] = {"path": args.destination}
    if args.destination.startswith("s3://"):
        if not args.endpoint or not args.credentials_secret:
            raise CommandError("an s3:// destination needs --endpoint and --credentials-secret (a Secret with "
                               "accessKeyId and secretAccessKey)", exit_code=2)
        dest |= {"endpoint": args.endpoint, "region": args.region,
                 "s3Credentials": {"secretName": args.credentials_secret}}
    return dest


def _backup(where: Where, backup_id: str) -> dict[str, Any]:
    """The CaxtonBackup whose id (or name) is `backup_id`."""
    for item in where.kube.get(where.path("caxtonbackups"))["items"]:
        if (item.get("status") or {}).get("id") == backup_id or item["metadata"]["name"] == backup_id:
            return dict(item)
    raise CommandError(f"no CaxtonBackup with id {backup_id} in {where.namespace} (kubectl caxton backup list)",
                       exit_code=4)


def _progress(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    return (f"{obj['metadata']['name']}: {status.get('phase', 'Pending')} {status.get('progress', '')} "
            f"{status.get('message', '')}").rstrip()


@_api_errors
def create(args: argparse.Namespace) -> None:
    if args.type != "full":
        raise CommandError(f"--type {args.type}: only full backups exist", exit_code=2)
    where = Where.from_args(args)
    from caxton_cli.client import ClusterRef

    cluster = ClusterRef(args.kubeconfig, where.namespace, args.cluster, context=getattr(args, "context", None)).name
    backup_id = args.id or _default_id()
    body = {"apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonBackup",
            "metadata": {"name": backup_id, "namespace": where.namespace},
            "spec": {"clusterRef": {"name": cluster}, "destination": _destination(args), "id": backup_id,
                     "compress": args.compress, "includeSecrets": args.include_secrets}}
    from caxton_kube import KubeError

    try:
        obj = where.kube.create(where.path("caxtonbackups"), body)
    except KubeError as err:
        if err.status == 409:
            raise CommandError(f"CaxtonBackup {backup_id} already exists in {where.namespace}: choose another "
                               "--id", exit_code=1) from None
        raise
    if not args.no_wait:
        obj = _follow(where, backup_id, args.timeout)
        status = obj.get("status") or {}
        if status.get("phase") == "Failed":
            raise CommandError(f"backup {backup_id} failed: {status.get('reason')}: {status.get('message')}")
    _show([obj], args.output, obj)


def _follow(where: Where, name: str, timeout: float) -> dict[str, Any]:
    """Prints a progress line on every change until the backup completes or fails."""
    started = time.monotonic()
    last = ""
    while True:
        obj = where.kube.get_or_none(where.path("caxtonbackups", name))
        if obj is None:
            raise CommandError(f"CaxtonBackup {name} was deleted", exit_code=4)
        line = _progress(obj)
        if line != last:
            print(line, file=sys.stderr, flush=True)
            last = line
        if (obj.get("status") or {}).get("phase") in ("Completed", "Failed"):
            return dict(obj)
        if time.monotonic() - started > timeout:
            raise CommandError(f"timed out after {timeout:.0f}s; {line}", exit_code=3)
        time.sleep(1)


def _show(items: list[dict[str, Any]], fmt: str, data: Any) -> None:
    rows = []
    for item in items:
        status = item.get("status") or {}
        rows.append((status.get("id") or item["spec"].get("id") or item["metadata"]["name"],
                     item["spec"]["clusterRef"]["name"], status.get("phase", "Pending"), status.get("progress", ""),
                     status.get("sizeBytes", ""), item["spec"]["destination"]["path"],
                     status.get("completedAt", ""), status.get("reason", "") if status.get("phase") == "Failed"
                     else ""))
    emit(data, fmt,
         headers=("ID", "CLUSTER", "PHASE", "NODES", "SIZE", "DESTINATION", "COMPLETED", "REASON"), rows=rows,
         empty="No backups found")


@_api_errors
def list_backups(args: argparse.Namespace) -> None:
    where = Where.from_args(args)
    items = where.kube.get(where.path("caxtonbackups"))["items"]
    if args.cluster:
        items = [i for i in items if i["spec"]["clusterRef"]["name"] == args.cluster]
    items.sort(key=lambda i: i["metadata"].get("creationTimestamp", ""))
    _show(items, args.output, items)


def _store(where: Where, spec_destination: dict[str, Any], backup_id: str) -> ObjectStore:
    """The backup's store, read with the credentials its destination names."""
    from caxton_node.backup.destinations import DestinationError, credentials_from_secret, open_store, parse
    from caxton_node.backup.s3 import S3Client

    dest = parse(spec_destination["path"])
    if dest.scheme != "s3":
        raise CommandError(f"{spec_destination['path']}: a pvc:// backup is readable only inside the cluster; "
                           "restore it by applying a CaxtonCluster with spec.bootstrap.fromBackup (its pods verify "
                           "every object before they restore; docs/backup.md)", exit_code=2)
    ref = spec_destination.get("s3Credentials") or {}
    secret = where.kube.get_or_none(f"/api/v1/namespaces/{where.namespace}/secrets/{ref.get('secretName', '')}")
    try:
        creds = credentials_from_secret(secret, name=ref.get("secretName", ""),
                                        id_key=ref.get("accessKeyIdKey", "accessKeyId"),
                                        secret_key=ref.get("secretAccessKeyKey", "secretAccessKey"))
    except DestinationError as err:
        raise CommandError(str(err), exit_code=2) from None
    client = S3Client(spec_destination["endpoint"], creds, region=spec_destination.get("region", "us-east-1"))
    return open_store(dest, backup_id, s3=client)


def _verified(store: ObjectStore, backup_id: str) -> dict[str, Any]:
    """The manifest, or exit 3 after one line per problem on stderr."""
    from caxton_node.backup import archive
    from caxton_node.backup.s3 import S3Error

    try:
        manifest, problems = archive.verify(store)
    except S3Error as err:
        raise CommandError(f"cannot read backup {backup_id}: {err}", exit_code=2) from None
    if manifest is None or problems:
        for problem in problems:
            print(f"{backup_id}: {problem}", file=sys.stderr)
        raise CommandError(f"backup {backup_id}: {len(problems)} problem(s)", exit_code=3)
    return manifest


@_api_errors
def verify(args: argparse.Namespace) -> None:
    where = Where.from_args(args)
    backup = _backup(where, args.id)
    backup_id = (backup.get("status") or {}).get("id") or args.id
    manifest = _verified(_store(where, backup["spec"]["destination"], backup_id), backup_id)
    summary = {"id": backup_id, "ok": True, "objects": len(manifest["objects"]), "sizeBytes": manifest["sizeBytes"],
               "nodes": manifest["nodes"], "createdAt": manifest["createdAt"]}
    emit(summary, args.output, text=f"backup {backup_id}: {len(manifest['objects'])} objects, "
         f"{manifest['sizeBytes']} bytes, every checksum and SQLite integrity check passed")


@_api_errors
def restore(args: argparse.Namespace) -> None:
    """kubectl mode: a new CaxtonCluster bootstrapped from the backup, once the backup verifies."""
    where = Where.from_args(args)
    backup = _backup(where, args.id)
    backup_id = (backup.get("status") or {}).get("id") or args.id
    destination = backup["spec"]["destination"]
    manifest = _verified(_store(where, destination, backup_id), backup_id)
    source = manifest["cluster"]
    target = args.target or source["name"]
    spec = {k: v for k, v in source["spec"].items() if k != "bootstrap"}
    nodes = len(manifest["nodes"])
    existing = where.kube.get_or_none(where.path("caxtonclusters", target))
    if existing is not None:
        replicas = int(existing["spec"].get("replicas", 0))
        if replicas != nodes:
            raise CommandError(f"backup {backup_id} holds {nodes} node(s) but CaxtonCluster {target} has {replicas} "
                               "replicas: restore into a cluster of the same size", exit_code=1)
        raise CommandError(f"CaxtonCluster {target} already exists; a restore creates a new cluster: delete it "
                           "first or choose another --target", exit_code=1)
    if spec.get("replicas", nodes) != nodes:
        raise CommandError(f"backup {backup_id} holds {nodes} node(s) but its cluster spec says "
                           f"{spec.get('replicas')}", exit_code=1)
    spec["bootstrap"] = {"fromBackup": {"id": backup_id, "destination": destination}}
    where.kube.create(where.path("caxtonclusters"), {
        "apiVersion": "caxton.dev/v1alpha1", "kind": "CaxtonCluster",
        "metadata": {"name": target, "namespace": where.namespace}, "spec": spec})
    print(f"caxtoncluster/{target} created from backup {backup_id} ({nodes} nodes)", file=sys.stderr)
    status: dict[str, Any] = {}
    if not args.no_wait:
        started = time.monotonic()
        last = ""
        while True:
            obj = where.kube.get(where.path("caxtonclusters", target))
            status = obj.get("status") or {}
            line = f"{target}: {status.get('phase', 'Pending')} {status.get('readyReplicas', 0)}/{nodes} ready"
            if line != last:
                print(line, file=sys.stderr, flush=True)
                last = line
            if status.get("phase") == "Running" and int(status.get("readyReplicas") or 0) == nodes:
                break
            if time.monotonic() - started > args.timeout:
                raise CommandError(f"timed out after {args.timeout:.0f}s; {line}", exit_code=3)
            time.sleep(1)
    emit({"cluster": target, "backup": backup_id, "nodes": nodes, "status": status}, args.output,
         text=f"caxtoncluster/{target} restored from {backup_id}")


@_api_errors
def delete(args: argparse.Namespace) -> None:
    where = Where.from_args(args)
    backup = _backup(where, args.id)
    backup_id = (backup.get("status") or {}).get("id") or args.id
    removed = 0
    status = backup.get("status") or {}
    # A backup refused because the id was taken wrote nothing: the objects there are another's.
    if args.purge and status.get("reason") != "BackupExists":
        store = _store(where, backup["spec"]["destination"], backup_id)
        for key in store.list_keys():
            store.delete(key)
            removed += 1
    path = where.path("caxtonbackups", backup["metadata"]["name"])
    where.kube.delete(path)
    deadline = time.monotonic() + DELETE_WAIT  # like kubectl delete: gone (finalizers done) when it returns
    while where.kube.get_or_none(path) is not None:
        if time.monotonic() > deadline:
            raise CommandError(f"caxtonbackup/{backup['metadata']['name']} is still there after {DELETE_WAIT:.0f}s "
                               "(its finalizer waits for the operator)", exit_code=3)
        time.sleep(0.5)
    emit({"id": backup_id, "objectsDeleted": removed}, args.output,
         text=f"caxtonbackup/{backup['metadata']['name']} deleted" + (f"; {removed} object(s) removed from "
                                                                      f"{backup['spec']['destination']['path']}"
                                                                      if args.purge else ""))


def restore_node(args: argparse.Namespace) -> None:
    """Direct mode (and the restoring pods): one node's data directory from a backup."""
    from caxton_node.backup import archive
    from caxton_node.backup.destinations import DestinationError, open_store, parse
    from caxton_node.backup.s3 import Credentials, S3Client, S3Error

    try:
        dest = parse(args.destination)
        client = None
        if dest.scheme == "s3":
            key_id, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
            if not (args.endpoint and key_id and secret):
                raise CommandError("an s3:// destination needs --endpoint and AWS_ACCESS_KEY_ID and "
                                   "AWS_SECRET_ACCESS_KEY in the environment", exit_code=2)
            client = S3Client(args.endpoint, Credentials(key_id, secret), region=args.region)
        store = open_store(dest, args.id, s3=client, mount=Path(args.mount) if args.mount else None)
        ordinal = args.ordinal if args.ordinal is not None else int(str(args.pod).rsplit("-", 1)[1])
        result = archive.restore_node(store, ordinal=ordinal, replicas=args.replicas, data_dir=Path(args.target))
    except (DestinationError, ValueError, IndexError) as err:
        raise CommandError(str(err), exit_code=2) from None
    except archive.RestoreRefused as err:
        raise CommandError(str(err), exit_code=3) from None
    except S3Error as err:
        raise CommandError(f"cannot read backup {args.id}: {err}", exit_code=2) from None
    emit(result, args.output, text=f"{args.target}: " + (
        f"restored {result['node']} from {args.id} ({result['objects']} objects)" if result["restored"]
        else f"already restored from {args.id}"))


def serve_volume(args: argparse.Namespace) -> None:
    """Direct mode, in the operator's volume pod: serve a pvc:// destination's directory."""
    from caxton_node.backup.volume_server import serve

    host, _, port = args.listen.rpartition(":")
    try:
        token = Path(args.token_file).read_text().strip()
        serve(Path(args.dir), host or "0.0.0.0", int(port), token)
    except (OSError, ValueError) as err:
        raise CommandError(f"cannot serve {args.dir} on {args.listen}: {err}", exit_code=2) from None
