"""Where the API server is and who we are to it: a kubeconfig (the files of $KUBECONFIG
merged the way kubectl merges them, or ~/.kube/config) or, inside a pod, its service
account.

Read here rather than through the `kubernetes` package because that package takes half
a second to import, which `kubectl caxton` would pay on every command.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeconfigError(RuntimeError):
    """The kubeconfig is missing, malformed, or names something it does not define."""


@dataclass
class Credentials:
    """Everything needed to open a connection: PEM bytes, not paths, for the -data fields."""

    server: str
    namespace: str = "default"
    ca_pem: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    token: str | None = None
    token_file: Path | None = None  # re-read on every request (rotated by the kubelet)
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    basic_auth: tuple[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode()) if self.ca_pem else ssl.create_default_context()
        if self.client_cert_pem and self.client_key_pem:
            import tempfile  # only here: imports are start-up time for the plugin

            # The ssl module loads a key pair only from files: a private directory, gone at once.
            with tempfile.TemporaryDirectory(prefix="caxton-kube-") as tmp:
                cert, key = Path(tmp) / "client.crt", Path(tmp) / "client.key"
                cert.write_bytes(self.client_cert_pem)
                key.touch(mode=0o600)
                key.write_bytes(self.client_key_pem)
                ctx.load_cert_chain(cert, key)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def token_now(self) -> str | None:
        """The bearer token, re-read from token_file each time (the kubelet rotates it)."""
        return self.token_file.read_text().strip() if self.token_file else self.token


def credentials(kubeconfig: Path | str | None = None, *, context: str | None = None) -> Credentials:
    """Inside a pod without a kubeconfig or context: its service account; else the kubeconfig."""
    found = None if kubeconfig or context else in_cluster()
    return found or load(kubeconfig, context=context)


def kubeconfig_paths(explicit: Path | str | None = None) -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def _merged(paths: list[Path]) -> tuple[dict[str, Any], dict[str, Path]]:
    """kubectl's merge: the first file to define a name wins, and the first current-context.
    Also returns the directory of the file each named entry came from (relative paths)."""
    import yaml

    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
    origin: dict[str, Path] = {}
    found = False
    for path in paths:
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except OSError as err:
            raise KubeconfigError(f"cannot read kubeconfig {path}: {err.strerror}") from None
        found = True
        try:
            doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}  # libyaml if built
        except yaml.YAMLError as err:
            raise KubeconfigError(f"kubeconfig {path} is not YAML: {err}") from None
        if not isinstance(doc, dict):
            raise KubeconfigError(f"kubeconfig {path} is not a mapping")
        merged["current-context"] = merged["current-context"] or doc.get("current-context") or ""
        for kind, key in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in doc.get(kind) or []:
                name = entry.get("name")
                if name is not None and name not in merged[kind]:
                    merged[kind][name] = entry.get(key) or {}
                    origin[f"{kind}/{name}"] = path.parent
    if not found:
        raise KubeconfigError(f"no kubeconfig at {os.pathsep.join(map(str, paths))} (set KUBECONFIG or --kubeconfig)")
    return merged, origin


def _data_or_file(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        path = Path(entry[key]).expanduser()
        try:
            return (path if path.is_absolute() else base / path).read_bytes()
        except OSError as err:
            raise KubeconfigError(f"cannot read {key} {path}: {err.strerror}") from None
    return None


def _exec_credential(spec: dict[str, Any], server: str) -> dict[str, Any]:
    """Runs a client-go credential plugin (`users[].user.exec`), as kubectl does."""
    import subprocess

    env = {**os.environ, **{e["name"]: e["value"] for e in spec.get("env") or []}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps({
        "apiVersion": spec.get("apiVersion", "client.authentication.k8s.io/v1"), "kind": "ExecCredential",
        "spec": {"interactive": False, "cluster": {"server": server}},
    })
    try:
        out = subprocess.run([spec["command"], *(spec.get("args") or [])], capture_output=True, text=True,
                             env=env, timeout=60, check=True).stdout
        status: dict[str, Any] = json.loads(out)["status"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as err:
        raise KubeconfigError(f"credential plugin {spec.get('command')} failed: {err}") from None
    return status


def current_context(kubeconfig: Path | str | None = None) -> tuple[str, dict[str, Any]]:
    merged, _ = _merged(kubeconfig_paths(kubeconfig))
    name = merged["current-context"]
    return name, merged["contexts"].get(name) or {}


def load(kubeconfig: Path | str | None = None, *, context: str | None = None) -> Credentials:
    """The credentials of `context` (default: the current one) in the kubeconfig."""
    merged, origin = _merged(kubeconfig_paths(kubeconfig))
    name = context or merged["current-context"]
    if not name:
        raise KubeconfigError("the kubeconfig has no current-context: choose one with --context")
    if name not in merged["contexts"]:
        raise KubeconfigError(f"context {name!r} is not in the kubeconfig")
    ctx = merged["contexts"][name]
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if cluster_name not in merged["clusters"]:
        raise KubeconfigError(f"context {name!r} names cluster {cluster_name!r}, which the kubeconfig lacks")
    cluster = merged["clusters"][cluster_name]
    user = merged["users"].get(user_name) or {}
    cluster_dir = origin[f"clusters/{cluster_name}"]
    user_dir = origin.get(f"users/{user_name}", cluster_dir)
    if not cluster.get("server"):
        raise KubeconfigError(f"cluster {cluster_name!r} has no server")
    creds = Credentials(
        server=str(cluster["server"]).rstrip("/"), namespace=ctx.get("namespace") or "default",
        ca_pem=_data_or_file(cluster, "certificate-authority", cluster_dir),
        insecure=bool(cluster.get("insecure-skip-tls-verify")), tls_server_name=cluster.get("tls-server-name"),
        client_cert_pem=_data_or_file(user, "client-certificate", user_dir),
        client_key_pem=_data_or_file(user, "client-key", user_dir),
        token=user.get("token"),
    )
    if user.get("tokenFile"):
        creds.token_file = Path(user["tokenFile"]).expanduser()
    if user.get("username") and user.get("password"):
        creds.basic_auth = (str(user["username"]), str(user["password"]))
    if user.get("exec"):
        status = _exec_credential(user["exec"], creds.server)
        creds.token = status.get("token") or creds.token
        if status.get("clientCertificateData"):
            creds.client_cert_pem = status["clientCertificateData"].encode()
            creds.client_key_pem = status["clientKeyData"].encode()
    if user.get("auth-provider"):
        raise KubeconfigError(f"user {user_name!r} uses an auth-provider, which this client does not support; "
                              "use an exec credential plugin")
    return creds


def in_cluster() -> Credentials | None:
    """The pod's service account, or None outside a pod."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    token = SERVICE_ACCOUNT_DIR / "token"
    if not (host and port and token.exists()):
        return None
    host = f"[{host}]" if ":" in host else host
    namespace_file = SERVICE_ACCOUNT_DIR / "namespace"
    ca = SERVICE_ACCOUNT_DIR / "ca.crt"
    return Credentials(server=f"https://{host}:{port}", token_file=token,
                       ca_pem=ca.read_bytes() if ca.exists() else None,
                       namespace=namespace_file.read_text().strip() if namespace_file.exists() else "default")
