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
from caxton_kube.errors import KubeUnreachable
from caxton_kube.verbs import RestVerbs


class Response:
    """What `raw` returns: enough of httpx.Response for a caller to read an answer."""

    def __init__(self, status_code: int, content: bytes, headers: dict[str, str]) -> None:
        self.status_code, self.content, self.headers = status_code, content, headers

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class OneShotKube(RestVerbs):
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
