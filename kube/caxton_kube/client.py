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
from caxton_kube.verbs import RestVerbs

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


class Kube(RestVerbs):
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
