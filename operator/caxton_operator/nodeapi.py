"""A CaxtonCluster's nodes, as the operator reaches them: the node API through the
API server's pod proxy, authenticated with the cluster's API token.

The pod proxy works wherever the operator runs (in the cluster or beside it) and
needs no route to pod addresses; RBAC grants it as `pods/proxy`.
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from typing import Any

import httpx
from caxton_node.api import tokens

from caxton_operator import kubeapi
from caxton_operator.resources.naming import Names


class NodeUnavailable(RuntimeError):
    """The node did not answer (pod missing, not running) or refused the call (`status`)."""

    def __init__(self, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code  # the node's error code; empty when the API server answered instead


def _node_error_code(resp: httpx.Response) -> str:
    """The node's `{code, message}` error code; the API server's own errors are Status objects."""
    try:
        body = resp.json()
    except ValueError:
        return ""
    code = body.get("code") if isinstance(body, dict) and body.get("kind") != "Status" else None
    return code if isinstance(code, str) else ""


class NodeApi:
    def __init__(self, names: Names, *, timeout: float = 10.0) -> None:
        self.names = names
        self.timeout = timeout
        self._token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            secret = kubeapi.get(f"/api/v1/namespaces/{self.names.namespace}/secrets/{self.names.token}")
            if secret is None:
                raise NodeUnavailable(f"the API token Secret {self.names.token} does not exist yet")
            self._token = tokens.first_line(base64.b64decode(secret["data"]["token"]).decode())
        return {"X-Caxton-Token": self._token}

    def call(self, pod: str, method: str, path: str, *, json: Any = None,
             timeout: float | None = None) -> httpx.Response:
        """One request to `pod`'s API; raises NodeUnavailable unless it answers 2xx."""
        proxy = f"/api/v1/namespaces/{self.names.namespace}/pods/{pod}:8080/proxy{path}"
        try:
            resp = kubeapi.client().raw(method, proxy, headers=self._headers(), json=json,
                                        timeout=timeout or self.timeout)
        except httpx.HTTPError as err:
            raise NodeUnavailable(f"{pod}: {method} {path}: {err}") from err
        if resp.status_code >= 300:
            raise NodeUnavailable(f"{pod}: {method} {path}: HTTP {resp.status_code} {resp.text[:200]}",
                                  resp.status_code, _node_error_code(resp))
        return resp

    def json(self, pod: str, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(pod, method, path, **kwargs).json()

    def first_answer(self, pods: list[str], path: str) -> tuple[str, Any] | None:
        """(pod, body) of the first pod that answers GET `path`, or None if none does."""
        for pod in pods:
            try:
                return pod, self.json(pod, "GET", path, timeout=3.0)
            except NodeUnavailable:
                continue
        return None

    def agents_by_node(self, pods: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Every answering node's agents; nodes that do not answer are left out."""
        found = {}
        for pod in pods:
            try:
                found[pod] = self.json(pod, "GET", "/v1/agents", timeout=3.0)
            except NodeUnavailable:
                continue
        return found

    def deploy(self, pod: str, agent_id: str, wasm: bytes, *, limits: dict[str, Any], priority: str,
               state: str | None = None) -> None:
        """Deploys an agent on `pod` (with `state`, base64 from its snapshot, when it moves there);
        an agent that is already there counts as deployed."""
        body: dict[str, Any] = {"id": agent_id, "wasm": base64.b64encode(wasm).decode(), "limits": limits,
                                "priority": priority}
        if state is not None:
            body["state"] = state
        try:
            self.call(pod, "POST", "/v1/agents", json=body, timeout=30.0)
        except NodeUnavailable as err:
            if err.code != "agent_exists":
                raise

    def remove(self, pod: str, agent_id: str) -> None:
        try:
            self.call(pod, "DELETE", f"/v1/agents/{agent_id}")
        except NodeUnavailable as err:
            if err.code != "agent_not_found":
                raise


def least_loaded(loads: dict[str, int], *, exclude: Collection[str] = ()) -> str | None:
    """The candidate with the fewest agents (ties: lowest name, so placement is predictable)."""
    candidates = sorted((load, pod) for pod, load in loads.items() if pod not in exclude)
    return candidates[0][1] if candidates else None
