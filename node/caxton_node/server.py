"""`caxton server start`: run a node with its API, metrics and (later) gossip.

The API serves on `node.api_addr` (:8080), metrics on `node.metrics_addr`
(:9090). SIGTERM stops accepting requests, lets the dispatcher finish, flushes
the journal and closes every agent, so a restart loses nothing accepted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import uvicorn
from prometheus_client import start_http_server

from caxton_node.api.app import create_app
from caxton_node.config import Config, ConfigError, split_host_port
from caxton_node.node import Node

log = logging.getLogger("caxton.server")


def node_version() -> str:
    """The image tag the node runs as (set by the runtime), else the package version."""
    if os.environ.get("CAXTON_VERSION"):
        return os.environ["CAXTON_VERSION"]
    try:
        return version("caxton-k8s")
    except PackageNotFoundError:
        return "dev"


def read_token(path: Path | None) -> str | None:
    if path is None:
        log.warning("no security.api.token_file: every API call will be refused with 401")
        return None
    try:
        token = path.read_text().strip()
    except OSError as err:
        raise ConfigError(f"cannot read security.api.token_file {path}: {err.strerror}") from None
    if len(token) < 16:
        raise ConfigError(f"the API token in {path} is shorter than 16 characters")
    return token


class _GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after shutting down, which would kill the process
    before the node flushes its journal; here a signal only asks it to exit."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(config: Config) -> None:
    token = read_token(config.security.api.token_file)
    node = Node(config, version=node_version())
    api_host, api_port = split_host_port(config.node.api_addr, 8080)
    metrics_host, metrics_port = split_host_port(config.node.metrics_addr, 9090)
    metrics_server, _ = start_http_server(metrics_port, metrics_host, registry=node.metrics.registry)
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(1.0):
            node.sample_metrics()

    threading.Thread(target=sample, name="metrics-sampler", daemon=True).start()
    log.info("node %s (version %s) serving API on %s:%d, metrics on %s:%d",
             node.id, node.version, api_host, api_port, metrics_host, metrics_port)
    server = _GracefulServer(uvicorn.Config(
        create_app(node, token), host=api_host, port=api_port, log_level="warning", access_log=False,
    ))
    try:
        server.run()
    finally:
        stop_sampling.set()
        metrics_server.shutdown()
        node.close()
        log.info("node %s stopped", node.id)
