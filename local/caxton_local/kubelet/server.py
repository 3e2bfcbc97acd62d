"""The kubelet API's container-logs endpoint, so `kubectl logs` works unchanged.

The API server answers `GET pods/{name}/log` by calling the pod's Node at its
InternalIP and `daemonEndpoints.kubeletEndpoint.Port`, on
`/containerLogs/{namespace}/{pod}/{container}` with kubectl's parameters. This serves
that path over TLS (the kubelet serving certificate of the local CA), for callers with
a client certificate of the same CA (the API server's kubelet-client identity).
"""

from __future__ import annotations

import datetime as dt
import logging
import select
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from caxton_local.kubelet.logs import LogQuery, follow, read_lines

log = logging.getLogger("caxton.kubelet")


# (namespace, pod, container, previous) -> the run's log directory and number, or why there is none
LogSource = Callable[[str, str, str, bool], "tuple[Path, int] | str"]


class BadQuery(ValueError):
    pass


def _flag(values: dict[str, list[str]], name: str) -> bool:
    return values.get(name, ["false"])[-1].lower() in ("true", "1")


def _number(values: dict[str, list[str]], name: str) -> int | None:
    if name not in values:
        return None
    try:
        number = int(values[name][-1])
    except ValueError:
        raise BadQuery(f"{name} must be an integer, not {values[name][-1]!r}") from None
    if number < 0:
        raise BadQuery(f"{name} must not be negative")
    return number


def parse_query(raw: str, now: float) -> LogQuery:
    """kubectl's log options as the API server passes them on (PodLogOptions)."""
    values = parse_qs(raw)
    since: float | None = None
    seconds = _number(values, "sinceSeconds")
    if seconds is not None:
        since = now - seconds
    if "sinceTime" in values:
        text = values["sinceTime"][-1]
        try:
            since = dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise BadQuery(f"sinceTime must be RFC 3339, not {text!r}") from None
    return LogQuery(follow=_flag(values, "follow"), previous=_flag(values, "previous"),
                    tail_lines=_number(values, "tailLines"), since=since, timestamps=_flag(values, "timestamps"),
                    limit_bytes=_number(values, "limitBytes"))


class _Handler(BaseHTTPRequestHandler):
    server: KubeletServer

    def log_message(self, format: str, *args: object) -> None:
        log.debug("kubelet api: " + format, *args)

    def _plain(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts == ["healthz"]:
            self._plain(200, "ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._plain(404, f"no such path: {url.path}")
            return
        _, namespace, pod, container = parts
        try:
            query = parse_query(url.query, dt.datetime.now(dt.UTC).timestamp())
        except BadQuery as err:
            self._plain(400, str(err))
            return
        found = self.server.source(namespace, pod, container, query.previous)
        if isinstance(found, str):
            self._plain(400, found)
            return
        directory, run = found
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        lines = follow(directory, run, query, stopped=self._gone) if query.follow else read_lines(
            directory, run, query)
        budget = query.limit_bytes
        try:
            for line in lines:
                if budget is not None:
                    if budget <= 0:
                        break
                    line = line[:budget]
                    budget -= len(line)
                self.wfile.write(line)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the follower went away

    def _gone(self) -> bool:
        """True once the server stops or the caller closed the connection (a follow ends)."""
        if self.server.stopping.is_set():
            return True
        try:  # the caller sends nothing after its request: anything readable is its close
            readable, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)


class KubeletServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, source: LogSource, *, cert: Path, key: Path, client_ca: Path) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.source = source
        self.stopping = threading.Event()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.socket = ctx.wrap_socket(self.socket, server_side=True)

    def start(self) -> None:
        threading.Thread(target=self.serve_forever, name="kubelet-api", daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
