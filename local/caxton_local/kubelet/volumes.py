"""Materialises a pod's volumes as host directories, ready to bind-mount.

ConfigMap, Secret, downward-API and projected volumes are written as files (and
refreshed on every sync, updating files in place so bind mounts stay valid);
emptyDir is a directory in the pod's own folder; a PVC resolves to its bound
PersistentVolume's directory, which outlives the pod.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caxton_kube import Kube, KubeError, Obj


class VolumeNotReady(RuntimeError):
    """A volume cannot be set up yet (claim unbound, ConfigMap missing): retried later."""


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


def _write_files(directory: Path, files: dict[str, bytes], mode: int) -> None:
    """Makes `directory` hold exactly `files`, touching only what changed."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = set()
    for rel, content in files.items():
        path = directory / rel
        wanted.add(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if path.read_bytes() == content:
                continue
        except OSError:
            pass
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(content)
        os.chmod(tmp, mode)
        tmp.replace(path)
    for existing in directory.rglob("*"):
        if existing.is_file() and existing not in wanted and not existing.name.startswith(".."):
            existing.unlink()


def field_value(pod: Obj, field_path: str) -> str:
    """Resolves a downward-API fieldRef such as `metadata.name` or `metadata.labels['x']`."""
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIP": status.get("hostIP", ""),
    }
    if field_path in simple:
        return str(simple[field_path])
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if field_path == prefix:
            items = meta.get(source) or {}
            return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
        if field_path.startswith(prefix + "['") and field_path.endswith("']"):
            return str((meta.get(source) or {}).get(field_path[len(prefix) + 2 : -2], ""))
    raise VolumeNotReady(f"unsupported fieldRef {field_path!r}")


def _key_items(
    data: dict[str, bytes], items: list[Obj] | None, what: str, optional: bool
) -> dict[str, bytes]:
    if not items:
        return dict(data)
    out = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise VolumeNotReady(f"{what} has no key {item['key']!r}")
        out[item["path"]] = data[item["key"]]
    return out


class VolumeBuilder:
    """Builds and refreshes one pod's volumes under `<pod_dir>/volumes/`."""

    def __init__(self, kube: Kube, pod_dir: Path, token_refresh_fraction: float = 0.5) -> None:
        self.kube = kube
        self.pod_dir = pod_dir
        self._token_expiry: dict[str, float] = {}
        self._token_refresh_fraction = token_refresh_fraction

    def _configmap(self, ns: str, name: str, optional: bool) -> dict[str, bytes]:
        cm = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/configmaps/{name}")
        if cm is None:
            if optional:
                return {}
            raise VolumeNotReady(f'configmap "{name}" not found')
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return data

    def _secret(self, ns: str, name: str, optional: bool) -> dict[str, bytes]:
        secret = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/secrets/{name}")
        if secret is None:
            if optional:
                return {}
            raise VolumeNotReady(f'secret "{name}" not found')
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}

    def _object_files(self, ns: str, source: Obj) -> dict[str, bytes]:
        """The files of a configMap or secret volume (or projected source)."""
        if "configMap" in source:
            src, kind, name = source["configMap"], "configmap", source["configMap"]["name"]
            data = self._configmap(ns, name, src.get("optional", False))
        else:
            src = source["secret"]
            kind, name = "secret", src.get("secretName") or src["name"]
            data = self._secret(ns, name, src.get("optional", False))
        return _key_items(data, src.get("items"), f'{kind} "{name}"', src.get("optional", False))

    def _token(self, pod: Obj, source: Obj, key: str, previous: bytes | None) -> bytes:
        if previous is not None and time.time() < self._token_expiry.get(key, 0):
            return previous
        ns, name = pod["metadata"]["namespace"], pod["spec"].get("serviceAccountName", "default")
        seconds = int(source.get("expirationSeconds", 3607))
        spec: dict[str, Any] = {
            "expirationSeconds": seconds,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                               "uid": pod["metadata"]["uid"]},
        }
        if source.get("audience"):
            spec["audiences"] = [source["audience"]]
        try:
            result = self.kube.create(
                f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token",
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            )
        except KubeError as err:
            raise VolumeNotReady(f"service account token for {name}: {err}") from err
        self._token_expiry[key] = time.time() + seconds * self._token_refresh_fraction
        return str(result["status"]["token"]).encode()

    def _downward(self, pod: Obj, items: list[Obj]) -> dict[str, bytes]:
        out = {}
        for item in items:
            if "fieldRef" in item:
                out[item["path"]] = field_value(pod, item["fieldRef"]["fieldPath"]).encode()
        return out

    def build(self, pod: Obj) -> dict[str, Path]:
        """Every volume of `pod` by name, as a host path; raises VolumeNotReady to retry."""
        ns = pod["metadata"]["namespace"]
        result: dict[str, Path] = {}
        for vol in pod["spec"].get("volumes") or []:
            name = vol["name"]
            target = self.pod_dir / "volumes" / name
            if "emptyDir" in vol:
                target.mkdir(parents=True, exist_ok=True)
            elif "configMap" in vol or "secret" in vol:
                src = vol.get("configMap") or vol["secret"]
                _write_files(target, self._object_files(ns, vol), src.get("defaultMode", 0o644))
            elif "downwardAPI" in vol:
                _write_files(target, self._downward(pod, vol["downwardAPI"].get("items", [])), 0o644)
            elif "projected" in vol:
                files: dict[str, bytes] = {}
                for source in vol["projected"].get("sources", []):
                    if "serviceAccountToken" in source:
                        sat = source["serviceAccountToken"]
                        path = target / sat["path"]
                        previous = path.read_bytes() if path.exists() else None
                        files[sat["path"]] = self._token(pod, sat, f"{name}/{sat['path']}", previous)
                    elif "configMap" in source or "secret" in source:
                        files.update(self._object_files(ns, source))
                    elif "downwardAPI" in source:
                        files.update(self._downward(pod, source["downwardAPI"].get("items", [])))
                _write_files(target, files, vol["projected"].get("defaultMode", 0o644))
            elif "persistentVolumeClaim" in vol:
                target = self._claim_path(ns, vol["persistentVolumeClaim"]["claimName"])
            elif "hostPath" in vol:
                target = Path(vol["hostPath"]["path"])
                if vol["hostPath"].get("type") == "DirectoryOrCreate":
                    target.mkdir(parents=True, exist_ok=True)
            else:
                kind = next((k for k in vol if k != "name"), "?")
                raise VolumeNotReady(f"volume {name!r}: type {kind} is not supported by the process kubelet")
            result[name] = target
        return result

    def _claim_path(self, ns: str, claim: str) -> Path:
        pvc = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")
        if pvc is None:
            raise VolumeNotReady(f'persistentvolumeclaim "{claim}" not found')
        volume_name = pvc.get("spec", {}).get("volumeName")
        if not volume_name or pvc.get("status", {}).get("phase") != "Bound":
            raise VolumeNotReady(f'persistentvolumeclaim "{claim}" is not bound yet')
        pv = self.kube.get(f"/api/v1/persistentvolumes/{volume_name}")
        spec = pv["spec"]
        path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
        if not path:
            raise VolumeNotReady(f"persistentvolume {volume_name} is neither hostPath nor local")
        return Path(path)


def container_mounts(container: Obj, volumes: dict[str, Path]) -> list[Mount]:
    mounts = []
    for vm in container.get("volumeMounts") or []:
        source = volumes[vm["name"]]
        if vm.get("subPath"):
            source = source / vm["subPath"]
            if not source.exists():
                source.mkdir(parents=True)
        mounts.append(Mount(source, vm["mountPath"], bool(vm.get("readOnly", False))))
    return mounts
