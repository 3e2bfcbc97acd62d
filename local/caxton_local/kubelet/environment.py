"""A container's environment and command line, as a kubelet would build them."""

from __future__ import annotations

import base64
import os
import re

from caxton_kube import Kube, Obj

from caxton_local.kubelet.volumes import VolumeNotReady, field_value

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)|\$\$")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: unknown references stay as written, `$$` escapes."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(sub, text)


def _resource_value(container: Obj, resource: str) -> str:
    kind, _, name = resource.partition(".")
    value = str(((container.get("resources") or {}).get(kind) or {}).get(name, "0"))
    if name == "cpu":
        # The downward API rounds CPU up to whole cores (divisor 1).
        millis = int(value[:-1]) if value.endswith("m") else int(float(value) * 1000)
        return str(max(1, -(-millis // 1000)))
    return value


def container_env(
    kube: Kube, pod: Obj, container: Obj, *, base: dict[str, str]
) -> dict[str, str]:
    """`base` (kubelet-provided variables) overlaid with envFrom and env, in that order."""
    ns = pod["metadata"]["namespace"]
    env = dict(base)

    def source_data(kind: str, name: str, optional: bool) -> dict[str, str]:
        path = f"/api/v1/namespaces/{ns}/{kind}s/{name}"
        obj = kube.get_or_none(path)
        if obj is None:
            if optional:
                return {}
            raise VolumeNotReady(f'{kind} "{name}" not found')
        data = obj.get("data") or {}
        if kind == "secret":
            return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
        return dict(data)

    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            ref = src["configMapRef"]
            data = source_data("configmap", ref["name"], ref.get("optional", False))
        else:
            ref = src["secretRef"]
            data = source_data("secret", ref["name"], ref.get("optional", False))
        env.update({prefix + k: v for k, v in data.items()})

    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = expand(var["value"], env)
            continue
        value_from = var.get("valueFrom") or {}
        if "fieldRef" in value_from:
            env[name] = field_value(pod, value_from["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in value_from:
            env[name] = _resource_value(container, value_from["resourceFieldRef"]["resource"])
        elif "configMapKeyRef" in value_from or "secretKeyRef" in value_from:
            kind = "configmap" if "configMapKeyRef" in value_from else "secret"
            ref = value_from.get("configMapKeyRef") or value_from["secretKeyRef"]
            data = source_data(kind, ref["name"], ref.get("optional", False))
            if ref["key"] in data:
                env[name] = data[ref["key"]]
            elif not ref.get("optional", False):
                raise VolumeNotReady(f'{kind} "{ref["name"]}" has no key {ref["key"]!r}')
        else:
            env[name] = ""
    return env


def kubelet_env(pod: Obj, *, pod_ip: str, apiserver_port: int) -> dict[str, str]:
    """What every container gets from the kubelet: service discovery of the API server."""
    port = str(apiserver_port)
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": "/root",
        "HOSTNAME": pod["metadata"]["name"],
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://127.0.0.1:{port}",
        "KUBERNETES_PORT_443_TCP": f"tcp://127.0.0.1:{port}",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": port,
        "KUBERNETES_PORT_443_TCP_ADDR": "127.0.0.1",
        "CAXTON_POD_IP": pod_ip,
    }
