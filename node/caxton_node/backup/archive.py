"""Writing, verifying and restoring one backup in an object store.

A backup is written node by node (each node's objects plus an index of them,
so an interrupted run can go on from the next node), then the manifest, then
its checksum. Restoring verifies every object of the whole backup before it
writes a byte: a backup with any problem restores nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from caxton_node.backup import format as fmt
from caxton_node.backup.destinations import ObjectStore
from caxton_node.backup.snapshot import DB_NAME, unpack

RESTORED_MARK = ".restored-from"


class BackupExists(RuntimeError):
    """The destination already holds objects under this id: nothing is overwritten."""


class RestoreRefused(RuntimeError):
    """The backup is damaged, incomplete or does not fit the target; nothing was written."""


def index_key(node: str) -> str:
    return f"nodes/{node}/objects.json"


def ensure_new(store: ObjectStore, backup_id: str) -> None:
    existing = store.list_keys()
    if existing:
        raise BackupExists(f"the destination already holds {len(existing)} object(s) under id {backup_id} "
                           f"(e.g. {existing[0]}); a backup is never overwritten: choose another id")


def write_node(store: ObjectStore, node: str, snapshot: bytes, *, zstd: bool) -> list[fmt.ObjectEntry]:
    """Stores one node's snapshot as objects, then its index; returns every entry written."""
    entries = []
    for name, data in sorted(unpack(snapshot).items()):
        kind = {DB_NAME: "sqlite", "agents.json": "agents", "messages.json": "messages",
                "node.json": "node"}.get(name, "module" if name.startswith("modules/") else "")
        if not kind:
            raise ValueError(f"{node}'s snapshot holds an unexpected file {name!r}")
        entry, stored = fmt.stored(f"nodes/{node}/{name}", data, kind=kind, node=node, zstd=zstd)
        store.put(entry.key, stored)
        entries.append(entry)
    index, data = fmt.stored(index_key(node), json.dumps([e.__dict__ for e in entries]).encode(),
                             kind="index", node=node)
    store.put(index.key, data)
    return [*entries, index]


def node_entries(store: ObjectStore, node: str) -> list[fmt.ObjectEntry] | None:
    """The entries a node's index lists (its own included), or None if it was not written."""
    raw = store.get(index_key(node))
    if raw is None:
        return None
    entries = [fmt.ObjectEntry(**e) for e in json.loads(raw)]
    index, _ = fmt.stored(index_key(node), raw, kind="index", node=node)
    return [*entries, index]


def write_extra(store: ObjectStore, key: str, body: Any, *, kind: str, zstd: bool) -> fmt.ObjectEntry:
    entry, data = fmt.stored(key, json.dumps(body, sort_keys=True, indent=1).encode(), kind=kind, zstd=zstd)
    store.put(entry.key, data)
    return entry


def finish(store: ObjectStore, *, backup_id: str, cluster: dict[str, Any], nodes: list[str],
           created_at: str, extra: list[fmt.ObjectEntry], include_secrets: bool) -> dict[str, Any]:
    """Writes the manifest (every node's entries plus `extra`) and its checksum; returns it."""
    objects = list(extra)
    for node in nodes:
        found = node_entries(store, node)
        if found is None:
            raise RuntimeError(f"{index_key(node)} is missing: {node} was not backed up")
        objects += found
    manifest = fmt.manifest_bytes(backup_id=backup_id, cluster=cluster, nodes=nodes, created_at=created_at,
                                  objects=objects, include_secrets=include_secrets)
    store.put(fmt.MANIFEST, manifest)
    store.put(fmt.MANIFEST_SUM, fmt.checksum_line(manifest))
    return json.loads(manifest)


def read_manifest(store: ObjectStore) -> dict[str, Any]:
    return fmt.parse_manifest(store.get(fmt.MANIFEST), store.get(fmt.MANIFEST_SUM))


def verify(store: ObjectStore) -> tuple[dict[str, Any] | None, list[str]]:
    """(manifest or None, every problem found). Re-reads every object."""
    try:
        manifest = read_manifest(store)
    except fmt.FormatError as err:
        return None, [str(err)]
    return manifest, fmt.check_backup(manifest, store.get, store.list_keys())


def restore_node(store: ObjectStore, *, ordinal: int, replicas: int, data_dir: Path) -> dict[str, Any]:
    """Restores the backed-up node at `ordinal` into `data_dir` (an empty data directory).

    The whole backup is verified first, and its size must match `replicas`; a data
    directory already restored from this backup is left alone (a restarted pod)."""
    manifest, problems = verify(store)
    if manifest is None or problems:
        raise RestoreRefused("the backup failed verification, nothing was restored:\n" + "\n".join(problems))
    nodes = manifest["nodes"]
    if len(nodes) != replicas:
        raise RestoreRefused(f"backup {manifest['id']} holds {len(nodes)} node(s); the target has {replicas} "
                             "replicas: restore into a cluster of the same size")
    if not 0 <= ordinal < len(nodes):
        raise RestoreRefused(f"ordinal {ordinal} is outside the backup's {len(nodes)} node(s)")
    mark = data_dir / RESTORED_MARK
    if mark.is_file():
        if mark.read_text().strip() == manifest["id"]:
            return {"node": nodes[ordinal], "restored": False, "reason": "already restored"}
        raise RestoreRefused(f"{data_dir} was restored from backup {mark.read_text().strip()}, not {manifest['id']}")
    if (data_dir / DB_NAME).exists():
        raise RestoreRefused(f"{data_dir} already holds a node's state ({DB_NAME}); a restore writes only "
                             "into empty data directories")
    source = nodes[ordinal]
    # Modules first, the database last: a node never starts on a database whose modules are missing.
    wanted = sorted((e for e in fmt.entries(manifest) if e.node == source and e.kind in ("sqlite", "module")),
                    key=lambda e: e.kind == "sqlite")
    data_dir.mkdir(parents=True, exist_ok=True)
    for entry in wanted:
        raw = store.get(entry.key)
        if raw is None or fmt.check_object(entry, raw):  # changed since the verification above
            raise RestoreRefused(f"{entry.key} changed during the restore")
        name = entry.key[len(f"nodes/{source}/"):]
        if entry.compression:
            name = name.removesuffix(fmt.ZSTD_SUFFIX)
        target = data_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".partial")
        tmp.write_bytes(fmt.decompress(raw, entry.compression))
        os.replace(tmp, target)
    mark.write_text(manifest["id"] + "\n")
    return {"node": source, "restored": True, "objects": len(wanted)}
