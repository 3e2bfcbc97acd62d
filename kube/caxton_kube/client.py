"""A small dict-in, dict-out Kubernetes REST client.

The operator, the plugin, the process kubelet and the tests work on raw API objects
(what `kubectl get -o json` shows) rather than generated model classes; this wraps
httpx with the credentials of a kubeconfig or of the pod's service account.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import httpx

from caxton_kube import kubeconfig
from caxton_kube.errors import KubeError, Obj

__all__ = ["Kube", "KubeError", "Obj"]

class _TokenFile(httpx.Auth):
    """A token file (the pod's service-account token), re-read when the kubelet rotates it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = -1.0
        self._token = ""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        stamp = self.path.stat().st_mtime
        if stamp != self._stamp:
            self._token, self._stamp = self.path.read_text().strip(), stamp
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class Kube:
    """One connection pool to one API server; safe to share between threads.

    Without a kubeconfig path, inside a pod: its service account; elsewhere: $KUBECONFIG
    or ~/.kube/config. `context` picks a context other than the current one."""

    def __init__(self, kubeconfig_path: Path | str | None = None, *, context: str | None = None,
                 timeout: float = 30.0) -> None:
        creds = kubeconfig.credentials(kubeconfig_path, context=context)
        self.namespace = creds.namespace
        headers = {"Accept": "application/json"}
        auth: httpx.Auth | None = None
        if creds.token_file:
            auth = _TokenFile(creds.token_file)
        elif creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        elif creds.basic_auth:
            auth = httpx.BasicAuth(*creds.basic_auth)
        extensions = {"sni_hostname": creds.tls_server_name} if creds.tls_server_name else None
        self.server = creds.server
        self._http = httpx.Client(
            base_url=self.server, verify=creds.ssl_context(), headers=headers, timeout=timeout, auth=auth,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            event_hooks={"request": [lambda r: r.extensions.update(extensions)]} if extensions else None,
        )

    def close(self) -> None:
        self._http.close()

    def _check(self, resp: httpx.Response) -> Obj:
        if resp.status_code >= 400:
            try:
                body = resp.json()
                raise KubeError(resp.status_code, body.get("message", resp.text), body.get("reason", ""))
            except (json.JSONDecodeError, AttributeError):
                raise KubeError(resp.status_code, resp.text) from None
        if not resp.content:
            return {}
        result: Obj = resp.json()
        return result

    def get(self, path: str, **params: Any) -> Obj:
        return self._check(self._http.get(path, params=params))

    def get_or_none(self, path: str, **params: Any) -> Obj | None:
        try:
            return self.get(path, **params)
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    def create(self, path: str, body: Obj) -> Obj:
        return self._check(self._http.post(path, json=body))

    def patch(self, path: str, body: Obj | list[Obj], *, kind: str = "merge") -> Obj:
        content_type = {
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "json": "application/json-patch+json",
        }[kind]
        return self._check(self._http.patch(
            path, content=json.dumps(body), headers={"Content-Type": content_type}
        ))

    def apply(self, path: str, body: Obj, *, manager: str) -> Obj:
        """Server-side apply: only the fields `manager` sets are touched, and re-applying the
        same object changes nothing."""
        return self._check(self._http.patch(
            path, content=json.dumps(body), params={"fieldManager": manager, "force": "true"},
            headers={"Content-Type": "application/apply-patch+yaml"},
        ))

    def put(self, path: str, body: Obj) -> Obj:
        return self._check(self._http.put(path, json=body))

    def delete(self, path: str, body: Obj | None = None) -> Obj | None:
        resp = self._http.request("DELETE", path, json=body)
        if resp.status_code == 404:
            return None
        return self._check(resp)

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._http.request(method, path, **kwargs)

    def watch(self, path: str, *, resource_version: str = "", timeout_seconds: int = 60,
              **params: Any) -> Iterator[Obj]:
        """Yields watch events until the server closes the stream (bounded by timeout)."""
        query = {"watch": "true", "timeoutSeconds": timeout_seconds, **params}
        if resource_version:
            query["resourceVersion"] = resource_version
            query["allowWatchBookmarks"] = "true"
        with self._http.stream(
            "GET", path, params=query, timeout=httpx.Timeout(10.0, read=timeout_seconds + 10)
        ) as resp:
            if resp.status_code >= 400:
                resp.read()
                self._check(resp)
            for line in resp.iter_lines():
                if line:
                    yield json.loads(line)
