"""How a command reaches nodes: `caxton` calls one node's API directly (--api);
`kubectl caxton` finds the CaxtonCluster's pods and calls them through the API server's
pod proxy, one chosen node (--node, else the first Ready one) or all of them at once."""

from __future__ import annotations

import argparse
import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from caxton_cli.errors import CommandError

if TYPE_CHECKING:
    import httpx
    from caxton_kube.oneshot import OneShotKube, Response

T = TypeVar("T")


def _result(resp: httpx.Response | Response, where: str) -> Any:
    if resp.status_code >= 400:
        try:
            body = resp.json()
            message = f"{body.get('code', resp.status_code)}: {body.get('message', resp.text)}"
        except ValueError:
            message = f"HTTP {resp.status_code} from {where}: {resp.text.strip()[:200]}"
        raise CommandError(message, exit_code=4 if resp.status_code == 404 else 1)
    return resp.json() if resp.content else None


class NodeClient:
    """A node's API, directly (`caxton --api URL`)."""

    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.where = self.base_url
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
             timeout: float | None = None) -> Any:
        import httpx

        try:
            resp = self._http.request(method, path, json=json, params=params,
                                      timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as err:
            raise CommandError(f"cannot reach the node API at {self.base_url}: {err}", exit_code=2) from None
        return _result(resp, self.base_url)


class ClusterRef:
    """The CaxtonCluster a `kubectl caxton` command is about (-n, --cluster, or the only one)."""

    def __init__(self, kubeconfig: str | None, namespace: str | None, cluster: str | None, *,
                 context: str | None = None) -> None:
        from caxton_kube import KubeError, KubeUnreachable
        from caxton_kube.kubeconfig import KubeconfigError
        from caxton_kube.oneshot import OneShotKube

        try:
            self.kube: OneShotKube = OneShotKube(kubeconfig, context=context)
        except (KubeconfigError, OSError, ValueError) as err:
            raise CommandError(f"cannot use the kubeconfig: {err}", exit_code=2) from None
        self.namespace = namespace or self.kube.namespace
        try:
            self.name = cluster or self._only_cluster()
        except KubeError as err:
            raise CommandError(f"cannot list CaxtonClusters in {self.namespace}: {err}", exit_code=2) from None
        except KubeUnreachable as err:
            raise CommandError(f"cannot reach the API server {err}", exit_code=2) from None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ClusterRef:
        return cls(args.kubeconfig, args.namespace, args.cluster, context=getattr(args, "context", None))

    def _only_cluster(self) -> str:
        found = [c["metadata"]["name"] for c in self.kube.get(self.path())["items"]]
        if not found:
            raise CommandError(f"no CaxtonCluster in namespace {self.namespace} (choose the namespace with -n)",
                               exit_code=4)
        if len(found) > 1:
            raise CommandError(f"{len(found)} CaxtonClusters in namespace {self.namespace} "
                               f"({', '.join(found)}): choose one with --cluster", exit_code=2)
        return str(found[0])

    def path(self, plural: str = "caxtonclusters", name: str | None = None) -> str:
        base = f"/apis/caxton.dev/v1alpha1/namespaces/{self.namespace}/{plural}"
        return f"{base}/{name}" if name else base


class ProxyNodeClient:
    """One node's API through the API server's pod proxy."""

    def __init__(self, kube: OneShotKube, namespace: str, pod: str, token: str) -> None:
        self.kube, self.node = kube, pod
        self.where = f"{namespace}/{pod}"
        self.prefix = f"/api/v1/namespaces/{namespace}/pods/{pod}:8080/proxy"
        self.headers = {"X-Caxton-Token": token}

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
             timeout: float | None = None) -> Any:
        from caxton_kube import KubeUnreachable

        try:
            resp = self.kube.raw(method, self.prefix + path, json=json, params=params, headers=self.headers,
                                 timeout=timeout or 30.0)
        except KubeUnreachable as err:
            raise CommandError(f"cannot reach {self.where} through the API server: {err}", exit_code=2) from None
        if resp.status_code in (502, 503) and b'"kind":"Status"' in resp.content:
            # The API server's own answer: it could not connect to the pod (unreachable, not refused).
            raise CommandError(f"cannot reach {self.where}: {resp.json().get('message', '')[:200]}", exit_code=2)
        return _result(resp, self.where)


@dataclass
class ClusterNodes:
    """The pods of a CaxtonCluster and the token of its node API."""

    ref: ClusterRef
    token: str
    pods: list[dict[str, Any]]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ClusterNodes:
        from caxton_kube import KubeError, KubeUnreachable

        ref = ClusterRef.from_args(args)
        namespace, cluster = ref.namespace, ref.name
        try:
            secret = ref.kube.get(f"/api/v1/namespaces/{namespace}/secrets/{cluster}-api-token")
            pods = ref.kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=(
                f"app.kubernetes.io/name=caxton,app.kubernetes.io/instance={cluster}"))["items"]
        except KubeError as err:
            if err.status == 404 and ref.kube.get_or_none(ref.path(name=cluster)) is None:
                raise CommandError(f"no CaxtonCluster {cluster} in namespace {namespace}", exit_code=4) from None
            raise CommandError(f"cannot read CaxtonCluster {cluster} in {namespace}: {err}", exit_code=2) from None
        except KubeUnreachable as err:
            raise CommandError(f"cannot reach the API server {err}", exit_code=2) from None
        pods.sort(key=lambda p: _ordinal(p["metadata"]["name"]))
        return cls(ref, first_token(base64.b64decode(secret["data"]["token"]).decode()), pods)

    @property
    def names(self) -> list[str]:
        return [p["metadata"]["name"] for p in self.pods]

    def ready(self) -> list[str]:
        return [p["metadata"]["name"] for p in self.pods if _pod_ready(p)]

    def client(self, node: str) -> ProxyNodeClient:
        if node not in self.names:
            raise CommandError(f"no node {node} in CaxtonCluster {self.ref.namespace}/{self.ref.name} "
                               f"(nodes: {', '.join(self.names) or 'none'})", exit_code=4)
        return ProxyNodeClient(self.ref.kube, self.ref.namespace, node, self.token)


def first_token(text: str) -> str:
    """The token to send: a token file or Secret holds one per line while a token rotates, and
    clients send the first (the node accepts every line)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _ordinal(name: str) -> tuple[int, str]:
    tail = name.rsplit("-", 1)[-1]
    return (int(tail), name) if tail.isdigit() else (1 << 30, name)


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or [])


def read_module(path: str) -> bytes:
    """A Wasm module named on the command line; a missing or unreadable file is bad input."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise CommandError(f"cannot read {path}: {err.strerror}", exit_code=2) from None


def _direct(args: argparse.Namespace) -> NodeClient:
    token = os.environ.get("CAXTON_TOKEN")
    if args.token_file:
        try:
            token = first_token(Path(args.token_file).read_text())
        except OSError as err:
            raise CommandError(f"cannot read token file {args.token_file}: {err.strerror}", exit_code=2) from None
    return NodeClient(args.api, token)


def client_from_args(args: argparse.Namespace) -> NodeClient | ProxyNodeClient:
    """The one node a command talks to: --api; or --node, else the first Ready pod."""
    if args.front_door != "kubectl":
        return _direct(args)
    nodes = ClusterNodes.from_args(args)
    if args.node:
        return nodes.client(args.node)
    ready = nodes.ready()
    if not ready:
        raise CommandError(f"CaxtonCluster {nodes.ref.namespace}/{nodes.ref.name} has no Ready pod to ask "
                           "(ask one anyway with --node)", exit_code=2)
    return nodes.client(ready[0])


@dataclass
class Answer:
    """One node's answer to a cluster-wide question, or why there is none."""

    node: str
    result: Any = None
    error: CommandError | None = None


def ask_every_node(args: argparse.Namespace, ask: Callable[[NodeClient | ProxyNodeClient], T]) -> list[Answer]:
    """`ask` on every node at once (kubectl mode: every pod, or only --node; direct mode:
    the one node). Answers come back in node order; a node that fails is an Answer with
    its error, so one unreachable node does not hide the others."""
    if args.front_door != "kubectl":
        client = _direct(args)
        return [Answer(client.where, result=ask(client))]
    nodes = ClusterNodes.from_args(args)
    names = [args.node] if args.node else nodes.names
    if not names:
        raise CommandError(f"CaxtonCluster {nodes.ref.namespace}/{nodes.ref.name} has no pods", exit_code=2)
    clients = [nodes.client(name) for name in names]

    def one(client: ProxyNodeClient) -> Answer:
        try:
            return Answer(client.node, result=ask(client))
        except CommandError as err:
            return Answer(client.node, error=err)

    from concurrent.futures import ThreadPoolExecutor  # only the cluster-wide commands need threads

    with ThreadPoolExecutor(max_workers=min(16, len(clients))) as pool:
        return list(pool.map(one, clients))
