"""Where backups live: an S3 bucket and prefix, or a directory (a PVC mounted in a pod).

A destination is written as a URL, the way the runbook does:
`s3://bucket/prefix/` or `pvc://claim-name/sub/dir/`. `parse` is pure and refuses
anything else with a message saying what is accepted. A store is opened on one
backup's directory (`<prefix>/<id>/`), and exposes the four calls backups need.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from caxton_node.backup.s3 import Credentials, S3Client, S3Error

BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
CLAIM = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
BACKUP_ID = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")


class DestinationError(ValueError):
    """A destination URL or backup id that cannot be used; the message says why."""


@dataclass(frozen=True)
class Destination:
    scheme: str  # "s3" or "pvc"
    where: str  # the bucket, or the claim's name
    prefix: str  # "" or a path ending in "/"

    def url(self) -> str:
        return f"{self.scheme}://{self.where}/{self.prefix}"


def parse(url: str) -> Destination:
    match = re.match(r"^(s3|pvc)://([^/]+)/?(.*)$", url or "")
    if not match:
        raise DestinationError(f"destination {url!r} must be s3://bucket/prefix/ or pvc://claim/path/")
    scheme, where, prefix = match.groups()
    pattern, what = (BUCKET, "an S3 bucket name") if scheme == "s3" else (CLAIM, "a PVC name")
    if not pattern.match(where):
        raise DestinationError(f"{where!r} in {url!r} is not {what}")
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise DestinationError(f"destination {url!r}: '.' and '..' are not allowed in the path")
    return Destination(scheme, where, "".join(f"{p}/" for p in parts))


def check_id(backup_id: str) -> str:
    if not BACKUP_ID.match(backup_id or ""):
        raise DestinationError(f"backup id {backup_id!r} must be lowercase letters, digits, '-' or '.', "
                               "at most 63, starting and ending with a letter or digit")
    return backup_id


class ObjectStore(Protocol):
    """One backup's directory; keys are relative to it."""

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def list_keys(self) -> list[str]: ...
    def delete(self, key: str) -> None: ...


class S3Store:
    def __init__(self, client: S3Client, bucket: str, base: str) -> None:
        self.client, self.bucket, self.base = client, bucket, base

    def put(self, key: str, data: bytes) -> None:
        self.client.put(self.bucket, self.base + key, data)

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get(self.bucket, self.base + key)
        except S3Error as err:
            if err.code == "NoSuchKey":  # not any 404: some servers answer an unknown key id with one
                return None
            raise

    def list_keys(self) -> list[str]:
        return [key[len(self.base):] for key, _ in self.client.list(self.bucket, self.base)
                if not key.endswith("/")]

    def delete(self, key: str) -> None:
        self.client.delete(self.bucket, self.base + key)


class DirectoryStore:
    """A backup's directory on a mounted volume; writes land whole (temp file, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise DestinationError(f"object key {key!r} leaves the backup's directory")
        return self.root / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(data)
        tmp.replace(path)

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def list_keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*")
                      if p.is_file() and not p.name.endswith(".partial"))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def list_ids(dest: Destination, *, s3: S3Client | None = None, mount: Path | None = None) -> list[str]:
    """The ids of the backups under a destination that have a manifest."""
    if dest.scheme == "s3":
        assert s3 is not None
        keys = [k for k, _ in s3.list(dest.where, dest.prefix)]
        rel = [k[len(dest.prefix):] for k in keys]
    else:
        assert mount is not None
        base = mount / dest.prefix
        rel = [str(p.relative_to(base)) for p in base.glob("*/manifest.json")] if base.is_dir() else []
    return sorted({r.split("/")[0] for r in rel if r.count("/") == 1 and r.endswith("/manifest.json")})


def open_store(dest: Destination, backup_id: str, *, s3: S3Client | None = None,
               mount: Path | None = None) -> ObjectStore:
    """The store for one backup: through `s3` for s3://, or under `mount` (where the claim is
    mounted) for pvc://."""
    check_id(backup_id)
    if dest.scheme == "s3":
        if s3 is None:
            raise DestinationError("an s3:// destination needs S3 credentials and an endpoint")
        return S3Store(s3, dest.where, f"{dest.prefix}{backup_id}/")
    if mount is None:
        raise DestinationError(f"pvc://{dest.where} must be mounted to be read or written")
    return DirectoryStore(mount / dest.prefix / backup_id)


def credentials_from_secret(secret: dict[str, Any] | None, *, name: str, id_key: str = "accessKeyId",
                            secret_key: str = "secretAccessKey") -> Credentials:
    """S3 credentials from a Kubernetes Secret object; DestinationError naming what is missing."""
    if secret is None:
        raise DestinationError(f"Secret {name} does not exist in this namespace")
    data = secret.get("data") or {}
    missing = [key for key in (id_key, secret_key) if key not in data]
    if missing:
        raise DestinationError(f"Secret {name} has no key {' or '.join(missing)}")
    return Credentials(base64.b64decode(data[id_key]).decode(), base64.b64decode(data[secret_key]).decode())
