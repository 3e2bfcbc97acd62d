"""The on-disk format of a backup (docs/backup.md): objects under `<prefix>/<id>/`, a
manifest listing each with its size and sha256, and the manifest's own checksum.

Everything here is pure (bytes in, bytes or problems out) so that writing,
verifying and restoring agree on one definition of "intact". The manifest is
written last: a backup without one is incomplete, and `verify` says so.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMAT = "caxton-backup/v1"
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.json.sha256"
ZSTD_SUFFIX = ".zst"


class FormatError(ValueError):
    """A backup that cannot be read as one (missing or tampered manifest, unknown format)."""


@dataclass(frozen=True)
class ObjectEntry:
    """One stored object. `size` and `sha256` are of the bytes as stored (compressed or not),
    so verification never needs to decompress to find a flipped byte."""

    key: str  # relative to the backup's directory, e.g. nodes/demo-0/caxton.db.zst
    size: int
    sha256: str
    kind: str  # sqlite | module | agents | messages | index | cluster | secret
    node: str = ""  # the pod whose state it is; "" for cluster-wide objects
    compression: str = ""  # "" or "zstd"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compress(data: bytes) -> bytes:
    import zstandard  # lazy: only backups made with --compress need it

    return zstandard.ZstdCompressor(level=3).compress(data)


def decompress(data: bytes, compression: str) -> bytes:
    if not compression:
        return data
    if compression != "zstd":
        raise FormatError(f"unknown compression {compression!r}")
    import zstandard

    return zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 34)


def stored(key: str, data: bytes, *, kind: str, node: str = "", zstd: bool = False) -> tuple[ObjectEntry, bytes]:
    """The entry and the bytes to store for one object, compressed when asked."""
    if zstd:
        data, key = compress(data), key + ZSTD_SUFFIX
    return ObjectEntry(key=key, size=len(data), sha256=sha256(data), kind=kind, node=node,
                       compression="zstd" if zstd else ""), data


def manifest_bytes(*, backup_id: str, cluster: dict[str, Any], nodes: list[str], created_at: str,
                   objects: list[ObjectEntry], include_secrets: bool) -> bytes:
    """The manifest, canonically encoded (sorted keys), so its checksum is reproducible."""
    body = {
        "format": FORMAT, "id": backup_id, "cluster": cluster, "nodes": nodes, "createdAt": created_at,
        "includesSecrets": include_secrets, "sizeBytes": sum(o.size for o in objects),
        "objects": [asdict(o) for o in sorted(objects, key=lambda o: o.key)],
    }
    return json.dumps(body, sort_keys=True, indent=1).encode()


def checksum_line(manifest: bytes) -> bytes:
    return f"{sha256(manifest)}  {MANIFEST}\n".encode()


def parse_manifest(manifest: bytes | None, checksum: bytes | None) -> dict[str, Any]:
    """The manifest, once its checksum matches; FormatError naming the problem otherwise."""
    if manifest is None:
        raise FormatError(f"{MANIFEST}: missing (the backup never completed, or the id is wrong)")
    if checksum is None:
        raise FormatError(f"{MANIFEST_SUM}: missing")
    expected = checksum.decode(errors="replace").split()[0] if checksum.strip() else ""
    if sha256(manifest) != expected:
        raise FormatError(f"{MANIFEST}: sha256 {sha256(manifest)} does not match {MANIFEST_SUM} ({expected})")
    try:
        body = json.loads(manifest)
    except ValueError as err:
        raise FormatError(f"{MANIFEST}: not JSON ({err})") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise FormatError(f"{MANIFEST}: format {body.get('format') if isinstance(body, dict) else None!r}, "
                          f"expected {FORMAT}")
    return body


def entries(manifest: dict[str, Any]) -> list[ObjectEntry]:
    return [ObjectEntry(**o) for o in manifest["objects"]]


def sqlite_problem(db: bytes) -> str:
    """SQLite's own integrity check of a snapshot; "" when it is sound."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check.db"
        path.write_bytes(db)
        conn = sqlite3.connect(path)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        except sqlite3.DatabaseError as err:
            return str(err)
        finally:
            conn.close()
    return "" if rows == ["ok"] else "; ".join(rows[:5])


def check_object(entry: ObjectEntry, data: bytes | None) -> list[str]:
    """Problems with one stored object, each naming it."""
    if data is None:
        return [f"{entry.key}: missing"]
    if len(data) != entry.size:
        return [f"{entry.key}: size {len(data)}, manifest says {entry.size}"]
    if sha256(data) != entry.sha256:
        return [f"{entry.key}: sha256 {sha256(data)}, manifest says {entry.sha256}"]
    if entry.kind == "sqlite":
        try:
            problem = sqlite_problem(decompress(data, entry.compression))
        except Exception as err:  # zstd raises its own error types
            problem = f"cannot decompress: {err}"
        if problem:
            return [f"{entry.key}: SQLite integrity check failed: {problem}"]
    return []


def check_backup(manifest: dict[str, Any], read: Callable[[str], bytes | None],
                 listed: list[str] | None = None) -> list[str]:
    """Every problem with the objects a manifest lists (re-read through `read`), plus objects
    found under the backup that it does not list. Empty means intact."""
    problems: list[str] = []
    known = {MANIFEST, MANIFEST_SUM}
    for entry in entries(manifest):
        known.add(entry.key)
        problems += check_object(entry, read(entry.key))
    for key in sorted(set(listed or ()) - known):
        problems.append(f"{key}: not listed in the manifest")
    return problems
