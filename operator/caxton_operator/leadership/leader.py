"""A replica's life under leader election: stand by (answering liveness probes) until the Lease
is ours, run the operator while renewing it, and release it when the operator stops cleanly.

Losing the Lease ends the process at once, as controller-runtime does: handlers may be half-way
through, and another replica is about to act, so nothing may be finished in a hurry; the kubelet
restarts the container, which comes back as a standby and resumes from status when it leads."""

from __future__ import annotations

import http.server
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from caxton_operator import metrics
from caxton_operator.leadership.lease import LeaseLock

log = logging.getLogger(__name__)


@contextmanager
def standby_health(port: int) -> Iterator[None]:
    """/healthz while standing by (Kopf serves it once the replica leads)."""
    if not port:
        yield
        return

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"standby\n"
            self.send_response(200 if self.path.split("?")[0] == "/healthz" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Health)
    thread = threading.Thread(target=server.serve_forever, name="standby-health", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _lost() -> None:
    logging.shutdown()
    os._exit(1)


def run_while_leading(lock: LeaseLock, run: Callable[[], None], *, health_port: int,
                      on_lost: Callable[[], None] = _lost) -> None:
    metrics.leader.set(0)
    with standby_health(health_port):
        lock.acquire(threading.Event())
    metrics.leader.set(1)
    stop = threading.Event()
    keeper = threading.Thread(target=lock.keep, args=(stop, on_lost), name="lease-renewal", daemon=True)
    keeper.start()
    try:
        run()
    finally:
        stop.set()
        keeper.join(timeout=lock.timing.retry_period * 2)
        metrics.leader.set(0)
        lock.release()
