"""The node API client behind every direct-mode command (`caxton ... --api URL`)."""

from __future__ import annotations

import argparse
import base64
import os
from pathlib import Path
from typing import Any

import httpx

from caxton_cli.output import CommandError

# Which front door parses the command line: `caxton` (direct to a node's API) or
# `kubectl caxton` (a CaxtonCluster, through the API server's pod proxy). Set by main.
FRONT_DOOR = "direct"


def _result(resp: httpx.Response, where: str) -> Any:
    if resp.status_code >= 400:
        try:
            body = resp.json()
            message = f"{body.get('code', resp.status_code)}: {body.get('message', resp.text)}"
        except ValueError:
            message = f"HTTP {resp.status_code} from {where}: {resp.text.strip()[:200]}"
        raise CommandError(message, exit_code=4 if resp.status_code == 404 else 1)
    return resp.json() if resp.content else None


class NodeClient:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
             timeout: float | None = None) -> Any:
        try:
            resp = self._http.request(method, path, json=json, params=params,
                                      timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as err:
            raise CommandError(f"cannot reach the node API at {self.base_url}: {err}", exit_code=2) from None
        return _result(resp, self.base_url)


class ClusterRef:
    """The CaxtonCluster a `kubectl caxton` command is about (-n, --cluster, or the only one)."""

    def __init__(self, kubeconfig: str | None, namespace: str | None, cluster: str | None) -> None:
        from caxton_kube import Kube, KubeError

        self.namespace = namespace or _context_namespace(kubeconfig)
        try:
            self.kube = Kube(kubeconfig)
            self.name = cluster or self._only_cluster()
        except KubeError as err:
            raise CommandError(f"cannot list CaxtonClusters in {self.namespace}: {err}", exit_code=2) from None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ClusterRef:
        return cls(args.kubeconfig, args.namespace, args.cluster)

    def _only_cluster(self) -> str:
        found = [c["metadata"]["name"] for c in
                 self.kube.get(f"/apis/caxton.dev/v1alpha1/namespaces/{self.namespace}/caxtonclusters")["items"]]
        if len(found) != 1:
            raise CommandError(f"{len(found)} CaxtonClusters in namespace {self.namespace} "
                               f"({', '.join(found) or 'none'}): choose one with --cluster", exit_code=2)
        return str(found[0])

    def path(self, plural: str = "caxtonclusters", name: str | None = None) -> str:
        base = f"/apis/caxton.dev/v1alpha1/namespaces/{self.namespace}/{plural}"
        return f"{base}/{name}" if name else base


class ProxyNodeClient:
    """The same calls, to a Ready node of a CaxtonCluster through the API server's pod proxy."""

    def __init__(self, ref: ClusterRef) -> None:
        from caxton_kube import KubeError

        self.kube = ref.kube
        namespace, cluster = ref.namespace, ref.name
        try:
            secret = self.kube.get(f"/api/v1/namespaces/{namespace}/secrets/{cluster}-api-token")
        except KubeError as err:
            raise CommandError(f"cannot read CaxtonCluster {cluster} in {namespace}: {err}", exit_code=2) from None
        self.token = base64.b64decode(secret["data"]["token"]).decode()
        pods = self.kube.get(f"/api/v1/namespaces/{namespace}/pods",
                             labelSelector=f"app.kubernetes.io/name=caxton,app.kubernetes.io/instance={cluster}")
        ready = sorted(p["metadata"]["name"] for p in pods["items"] if any(
            c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions") or []))
        if not ready:
            raise CommandError(f"CaxtonCluster {namespace}/{cluster} has no Ready pod to ask", exit_code=2)
        self.where = f"{namespace}/{ready[0]}"
        self.prefix = f"/api/v1/namespaces/{namespace}/pods/{ready[0]}:8080/proxy"

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
             timeout: float | None = None) -> Any:
        try:
            resp = self.kube.raw(method, self.prefix + path, json=json, params=params,
                                 headers={"X-Caxton-Token": self.token}, timeout=timeout or 30.0)
        except httpx.HTTPError as err:
            raise CommandError(f"cannot reach {self.where} through the API server: {err}", exit_code=2) from None
        return _result(resp, self.where)


def _context_namespace(kubeconfig: str | None) -> str:
    from kubernetes import config as k8s_config

    try:
        _, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
        return str(active.get("context", {}).get("namespace") or "default")
    except (k8s_config.ConfigException, OSError):
        return "default"


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    if FRONT_DOOR == "kubectl":
        parser.add_argument("-n", "--namespace", help="namespace of the CaxtonCluster (default: the context's)")
        parser.add_argument("--cluster", help="the CaxtonCluster (default: the only one in the namespace)")
        parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    else:
        parser.add_argument("--api", default=os.environ.get("CAXTON_API", "http://127.0.0.1:8080"),
                            help="node API URL (default: $CAXTON_API or %(default)s)")
        parser.add_argument("--token-file", type=Path, default=os.environ.get("CAXTON_TOKEN_FILE"),
                            help="file holding the API bearer token (default: $CAXTON_TOKEN_FILE; or $CAXTON_TOKEN)")
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")


def client_from_args(args: argparse.Namespace) -> NodeClient | ProxyNodeClient:
    if FRONT_DOOR == "kubectl":
        return ProxyNodeClient(ClusterRef.from_args(args))
    token = os.environ.get("CAXTON_TOKEN")
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as err:
            raise CommandError(f"cannot read token file {args.token_file}: {err.strerror}") from None
    return NodeClient(args.api, token)
