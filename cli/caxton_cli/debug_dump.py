"""`debug dump --output FILE.tar.gz`: everything a bug report needs, nothing secret.

Per node (`nodes/<node>/`): config.json, status.json, members.json, partition.json,
agents.json, queue.json, memory.json, dead-letters.json, events.json, metrics.txt and,
in plugin mode, log.txt (`kubectl logs --tail`) and log-previous.txt (the crashed run,
if any). In plugin mode also cluster/caxtoncluster.yaml, cluster/caxtonagents.yaml,
cluster/pods.yaml and cluster/events.yaml. `errors.txt` names what could not be
collected. `MANIFEST.txt` lists every file.

Redaction: values under keys that name secrets (token, key, password, secret, cert
data) are replaced, every PEM private key block is replaced, and the API token and
the cluster's gossip key (read from their Secrets) are replaced wherever they appear.
Secrets themselves are never read into the archive.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import tarfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from caxton_cli.client import ClusterNodes, NodeClient, ProxyNodeClient, client_from_args
from caxton_cli.errors import CommandError
from caxton_cli.output import emit

REDACTED = "[REDACTED]"
LOG_LINES = 2000
_SECRET_KEY = re.compile(r"(token|password|passwd|secret|private|gossip_?key|(^|_)key$|-key$|keyring|"
                         r"client-key-data|client-certificate-data)", re.IGNORECASE)
_PEM_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL)
NODE_CALLS = (("config.json", "/v1/config"), ("status.json", "/v1/cluster/status"),
              ("members.json", "/v1/cluster/members"), ("partition.json", "/v1/cluster/partition"),
              ("agents.json", "/v1/agents"), ("queue.json", "/v1/queue"), ("memory.json", "/v1/memory"),
              ("dead-letters.json", "/v1/dead-letters"), ("events.json", "/v1/cluster/events"))


def redact(data: Any) -> Any:
    """`data` with the values of secret-named keys replaced (paths to key files are kept:
    they say where a key is, not what it is)."""
    if isinstance(data, dict):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) and not _is_path_key(str(k)) and v not in (None, "")
                    else redact(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def _is_path_key(key: str) -> bool:
    return key.endswith(("_file", "_path", "_dir")) or key in ("node_key", "ca_cert", "node_cert")


def scrub(blob: bytes, secrets: list[bytes]) -> bytes:
    """PEM private keys and the known secret values, replaced wherever they appear."""
    blob = _PEM_KEY.sub(REDACTED.encode(), blob)
    for secret in secrets:
        if len(secret) >= 8:
            blob = blob.replace(secret, REDACTED.encode())
    return blob


class Archive:
    def __init__(self, secrets: list[bytes]) -> None:
        self.files: dict[str, bytes] = {}
        self.errors: list[str] = []
        self.secrets = secrets

    def add(self, name: str, content: Any) -> None:
        if isinstance(content, bytes):
            blob = content
        elif isinstance(content, str):
            blob = content.encode()
        elif name.endswith(".yaml"):
            import yaml

            blob = yaml.safe_dump(redact(content), sort_keys=False).encode()
        else:
            blob = json.dumps(redact(content), indent=2, default=str).encode()
        self.files[name] = scrub(blob, self.secrets)

    def collect(self, name: str, get: Callable[[], Any]) -> None:
        try:
            self.add(name, get())
        except CommandError as err:
            self.errors.append(f"{name}: {err}")

    def write(self, path: str) -> None:
        self.files["MANIFEST.txt"] = "\n".join(sorted([*self.files, "errors.txt"] if self.errors else
                                                      self.files)).encode() + b"\n"
        if self.errors:
            self.files["errors.txt"] = ("\n".join(self.errors) + "\n").encode()
        stamp = time.time()
        root = re.sub(r"\.tar\.gz$|\.tgz$", "", path.rsplit("/", 1)[-1]) or "caxton-debug"
        try:
            with tarfile.open(path, "w:gz") as tar:
                for name, blob in sorted(self.files.items()):
                    info = tarfile.TarInfo(f"{root}/{name}")
                    info.size, info.mtime, info.mode = len(blob), int(stamp), 0o600
                    tar.addfile(info, io.BytesIO(blob))
        except OSError as err:
            raise CommandError(f"cannot write {path}: {err.strerror or err}", exit_code=2) from None


def _node_files(archive: Archive, node: str, client: NodeClient | ProxyNodeClient, metrics: Callable[[], str]) -> None:
    for name, path in NODE_CALLS:
        archive.collect(f"nodes/{node}/{name}", partial(client.call, "GET", path))
    archive.collect(f"nodes/{node}/metrics.txt", metrics)


def dump(args: argparse.Namespace) -> None:
    if not args.archive.endswith((".tar.gz", ".tgz")):
        raise CommandError(f"--output must name a .tar.gz file, not {args.archive}", exit_code=2)
    if args.front_door != "kubectl":
        client = client_from_args(args)
        archive = Archive([])
        node = client.call("GET", "/v1/cluster/status")["node"]
        _node_files(archive, node, client, lambda: _direct_metrics(client))
    else:
        archive = _plugin_dump(args)
    archive.write(args.archive)
    emit({"output": args.archive, "files": sorted(archive.files), "errors": archive.errors}, args.output,
         text=f"wrote {args.archive}: {len(archive.files)} file(s)" + (
             f", {len(archive.errors)} part(s) not collected (see errors.txt)" if archive.errors else ""))


def _direct_metrics(client: NodeClient | ProxyNodeClient) -> str:
    """The node's /metrics on its metrics port (the API address with port 9090)."""
    import httpx

    assert isinstance(client, NodeClient)
    url = re.sub(r":\d+$", ":9090", client.base_url) + "/metrics"
    try:
        return httpx.get(url, timeout=10).text
    except httpx.HTTPError as err:
        raise CommandError(f"cannot read {url}: {err}", exit_code=2) from None


def _plugin_dump(args: argparse.Namespace) -> Archive:
    import base64

    from caxton_kube import KubeError

    nodes = ClusterNodes.from_args(args)
    kube, ns, name = nodes.ref.kube, nodes.ref.namespace, nodes.ref.name
    secrets = [nodes.token.encode()]
    try:  # the gossip key is redacted wherever it might appear; it is never written
        gossip = kube.get(f"/api/v1/namespaces/{ns}/secrets/{name}-gossip")
        secrets += [base64.b64decode(v) for v in (gossip.get("data") or {}).values()]
        secrets += [v.encode() for v in (gossip.get("data") or {}).values()]
    except KubeError:
        pass
    secrets += [s.strip() for s in secrets if s.strip() != s]
    archive = Archive(secrets)

    def kube_get(path: str, **params: Any) -> Any:
        try:
            return kube.get(path, **params)
        except KubeError as err:
            raise CommandError(f"GET {path}: {err}", exit_code=2) from None

    archive.collect("cluster/caxtoncluster.yaml", lambda: kube_get(nodes.ref.path(name=name)))
    archive.collect("cluster/caxtonagents.yaml", lambda: kube_get(nodes.ref.path("caxtonagents"))["items"])
    archive.collect("cluster/pods.yaml", lambda: nodes.pods)
    archive.collect("cluster/events.yaml", lambda: kube_get(f"/api/v1/namespaces/{ns}/events")["items"])
    for pod in ([args.node] if args.node else nodes.names):
        base = f"/api/v1/namespaces/{ns}/pods/{pod}"
        _node_files(archive, pod, nodes.client(pod), partial(_proxy_text, kube, f"{base}:9090/proxy/metrics"))
        archive.collect(f"nodes/{pod}/log.txt", partial(_proxy_text, kube, f"{base}/log", tailLines=LOG_LINES))
        with contextlib.suppress(CommandError):  # no crashed run: nothing to add
            archive.add(f"nodes/{pod}/log-previous.txt",
                        _proxy_text(kube, f"{base}/log", tailLines=LOG_LINES, previous="true"))
    return archive


def _proxy_text(kube: Any, path: str, **params: Any) -> str:
    from caxton_kube import KubeUnreachable

    try:
        resp = kube.raw("GET", path, params=params, timeout=30.0)
    except KubeUnreachable as err:
        raise CommandError(f"GET {path}: {err}", exit_code=2) from None
    if resp.status_code >= 400:
        raise CommandError(f"GET {path}: HTTP {resp.status_code}: {resp.text.strip()[:200]}", exit_code=2)
    return str(resp.text)
