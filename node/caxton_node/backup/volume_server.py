"""`caxton backup serve`: a backup directory on a mounted volume, served over HTTP.

The operator cannot mount a user's PVC into itself, so for a `pvc://` destination
it runs a short-lived pod that mounts the claim and serves it with this, and
writes through the API server's pod proxy, the same four calls an S3 bucket
answers (put, get, list, delete; see `PodStore`). Every call needs the cluster's
API token; keys may not leave the directory (DirectoryStore refuses `..`).
"""

from __future__ import annotations

import hmac
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from caxton_node.backup.destinations import DestinationError, DirectoryStore

MAX_OBJECT = 1 << 32  # 4 GiB: a node's database and modules fit many times over


def serve(root: Path, host: str, port: int, token: str) -> None:
    """Serves until killed: POST (write)|GET|DELETE /objects/<backup-id>/<key>, GET /objects/<backup-id>/
    (the keys, JSON), GET /ids (backup ids with a manifest), GET /healthz (open)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:  # one line per request is noise in a pod log
            return

        def _reply(self, status: int, body: bytes = b"", kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: str, message: str) -> None:
            self._reply(status, json.dumps({"code": code, "message": message}).encode())

        def _target(self) -> tuple[DirectoryStore, str] | None:
            path = unquote(urlsplit(self.path).path)
            if not path.startswith("/objects/"):
                self._error(404, "not_found", f"no such path {path}")
                return None
            backup_id, _, key = path[len("/objects/"):].partition("/")
            if not backup_id or backup_id in (".", ".."):
                self._error(400, "bad_id", "a backup id is needed")
                return None
            return DirectoryStore(root / backup_id), key

        def _authorized(self) -> bool:
            given = self.headers.get("X-Caxton-Token") or self.headers.get("Authorization", "").removeprefix(
                "Bearer ")
            if hmac.compare_digest(given.encode(), token.encode()):
                return True
            self._error(401, "unauthorized", "missing or wrong token")
            return False

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, b"ok", "text/plain")
                return
            if not self._authorized():
                return
            if urlsplit(self.path).path == "/ids":
                ids = sorted(p.parent.name for p in root.glob("*/manifest.json")) if root.is_dir() else []
                self._reply(200, json.dumps(ids).encode())
                return
            target = self._target()
            if target is None:
                return
            store, key = target
            try:
                if not key:
                    self._reply(200, json.dumps(store.list_keys()).encode())
                    return
                data = store.get(key)
            except DestinationError as err:
                self._error(400, "bad_key", str(err))
                return
            if data is None:
                self._error(404, "no_such_key", f"no object {key}")
            else:
                self._reply(200, data, "application/octet-stream")

        def do_POST(self) -> None:  # a write (POST: the pod proxy grants it as `create`)
            if not self._authorized():
                return
            target = self._target()
            if target is None:
                return
            store, key = target
            length = int(self.headers.get("Content-Length") or -1)
            if not key or not 0 <= length <= MAX_OBJECT:
                self._error(400, "bad_request", "POST needs a key and a Content-Length up to 4 GiB")
                return
            try:
                store.put(key, self.rfile.read(length))
            except DestinationError as err:
                self._error(400, "bad_key", str(err))
                return
            except OSError as err:
                self._error(507, "write_failed", f"{key}: {err}")
                return
            self._reply(200, b"{}")

        def do_DELETE(self) -> None:
            if not self._authorized():
                return
            target = self._target()
            if target is None:
                return
            store, key = target
            try:
                store.delete(key)
            except DestinationError as err:
                self._error(400, "bad_key", str(err))
                return
            self._reply(200, b"{}")

    root.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    try:
        server.serve_forever()
    finally:
        server.server_close()

