"""The same API calls as `Kube`, over the standard library's http.client, for commands
that make a few requests and exit (`kubectl caxton`).

Importing httpx and its transport takes about 100 ms, more than the requests of a
typical command; http.client is already loaded by Python's own startup path. One
keep-alive connection per thread, so the cluster-wide commands can ask nodes in
parallel through one object.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from typing import Any
from urllib.parse import urlencode, urlsplit

from caxton_kube import kubeconfig
from caxton_kube.errors import KubeError, KubeUnreachable, Obj

PATCH_TYPES = {"merge": "application/merge-patch+json", "strategic": "application/strategic-merge-patch+json",
               "json": "application/json-patch+json"}


class Response:
    """What `raw` returns: enough of httpx.Response for a caller to read an answer."""

    def __init__(self, status_code: int, content: bytes, headers: dict[str, str]) -> None:
        self.status_code, self.content, self.headers = status_code, content, headers

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class OneShotKube:
    def __init__(self, kubeconfig_path: str | None = None, *, context: str | None = None,
                 timeout: float = 30.0) -> None:
        self._creds = kubeconfig.credentials(kubeconfig_path, context=context)
        self.namespace, self.server, self.timeout = self._creds.namespace, self._creds.server, timeout
        url = urlsplit(self.server)
        self._tls = url.scheme == "https"
        self._host, self._port = url.hostname or "localhost", url.port or (443 if self._tls else 80)
        self._base = url.path.rstrip("/")
        self._context = self._creds.ssl_context() if self._tls else None
        self._local = threading.local()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._tls:
                conn = _HTTPSConnection(self._host, self._port, timeout=timeout, context=self._context,
                                        server_name=self._creds.tls_server_name)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def raw(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None, content: bytes | str | None = None,
            timeout: float | None = None) -> Response:
        """One request; KubeUnreachable when there is no answer at all."""
        target = self._base + path + (f"?{urlencode(params, doseq=True)}" if params else "")
        body = content.encode() if isinstance(content, str) else content
        sent = {"Accept": "application/json", **(headers or {})}
        if json is not None:
            body = _json_bytes(json)
            sent.setdefault("Content-Type", "application/json")
        token = self._creds.token_now()
        if token:
            sent["Authorization"] = f"Bearer {token}"
        elif self._creds.basic_auth:
            sent["Authorization"] = "Basic " + base64.b64encode(":".join(self._creds.basic_auth).encode()).decode()
        while True:
            conn = self._connection(timeout or self.timeout)
            reused = conn.sock is not None
            try:
                conn.request(method, target, body=body, headers=sent)
                resp = conn.getresponse()
                return Response(resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()})
            except (OSError, http.client.HTTPException) as err:
                conn.close()
                self._local.conn = None
                closed_meanwhile = isinstance(err, http.client.RemoteDisconnected | BrokenPipeError |
                                              ConnectionResetError)
                if not (reused and closed_meanwhile):  # a kept-alive connection gone stale: once more, afresh
                    raise KubeUnreachable(f"{self.server}: {err}") from None

    def _check(self, resp: Response) -> Obj:
        if resp.status_code >= 400:
            try:
                body = resp.json()
                raise KubeError(resp.status_code, body.get("message", resp.text), body.get("reason", ""))
            except (ValueError, AttributeError):
                raise KubeError(resp.status_code, resp.text) from None
        result: Obj = resp.json() if resp.content else {}
        return result

    def get(self, path: str, **params: Any) -> Obj:
        return self._check(self.raw("GET", path, params=params))

    def get_or_none(self, path: str, **params: Any) -> Obj | None:
        try:
            return self.get(path, **params)
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    def create(self, path: str, body: Obj) -> Obj:
        return self._check(self.raw("POST", path, json=body))

    def patch(self, path: str, body: Obj | list[Obj], *, kind: str = "merge") -> Obj:
        return self._check(self.raw("PATCH", path, content=_json_bytes(body),
                                    headers={"Content-Type": PATCH_TYPES[kind]}))

    def apply(self, path: str, body: Obj, *, manager: str) -> Obj:
        """Server-side apply, as `Kube.apply`."""
        return self._check(self.raw("PATCH", path, content=_json_bytes(body),
                                    params={"fieldManager": manager, "force": "true"},
                                    headers={"Content-Type": "application/apply-patch+yaml"}))

    def delete(self, path: str, body: Obj | None = None) -> Obj | None:
        resp = self.raw("DELETE", path, json=body)
        if resp.status_code == 404:
            return None
        return self._check(resp)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


class _HTTPSConnection(http.client.HTTPSConnection):
    """Checks the certificate for `server_name` (a kubeconfig's tls-server-name) when given."""

    def __init__(self, host: str, port: int, *, timeout: float, context: Any, server_name: str | None) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._ctx, self._server_name = context, server_name

    def connect(self) -> None:
        if not self._server_name:
            super().connect()
            return
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._server_name)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()
