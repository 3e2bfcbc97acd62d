"""`caxton server start`: run a node with its API, metrics and (later) gossip.

The API serves on `node.api_addr` (:8080), metrics on `node.metrics_addr`
(:9090). SIGTERM stops accepting requests, lets the dispatcher finish, flushes
the journal and closes every agent, so a restart loses nothing accepted.

Start-up checks what can fail before it changes anything: the ports are bound
(and the gossip port tried) before the data directory is created or locked, so
a busy port or a bad directory is one line, exit 2, and nothing left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sqlite3
import ssl
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import start_http_server

from caxton_node.api.app import create_app
from caxton_node.api.tokens import TokenError, TokenSet
from caxton_node.config import Config, ConfigError, StartupError, split_host_port
from caxton_node.datadir import check_data_dir, lock_data_dir
from caxton_node.gossip.membership import Membership
from caxton_node.gossip.swim import Addr, SwimConfig
from caxton_node.gossip.transport import Keyring, KeyringError
from caxton_node.node import Node
from caxton_node.peers.channel import CertificateReloader, ChannelServer
from caxton_node.peers.forwarder import Forwarder

log = logging.getLogger("caxton.server")


def node_version() -> str:
    """The image tag the node runs as (set by the runtime), else the package version."""
    if os.environ.get("CAXTON_VERSION"):
        return os.environ["CAXTON_VERSION"]
    try:
        return version("caxton-k8s")
    except PackageNotFoundError:
        return "dev"


def read_tokens(path: Path | None) -> TokenSet:
    if path is None:
        log.warning("no security.api.token_file: every API call will be refused with 401")
    try:
        return TokenSet.from_file(path)
    except TokenError as err:
        raise ConfigError(str(err)) from None


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


def advertise_address(config: Config, api_host: str) -> Addr:
    """Where peers reach this node: advertise_addr, else the pod IP, else the bind address."""
    cluster = config.coordination.cluster
    bind_host, bind_port = split_host_port(cluster.bind_addr, 7946)
    if cluster.advertise_addr:
        return split_host_port(cluster.advertise_addr, bind_port)
    for candidate in (os.environ.get("POD_IP"), os.environ.get("CAXTON_POD_IP"), bind_host, api_host):
        if candidate and candidate not in ("0.0.0.0", "::"):
            return candidate, bind_port
    return "127.0.0.1", bind_port


def load_level(queue_depth: int) -> int:
    """Queue depth as an order of magnitude (0: idle ... 6: a million): gossiped, so it must
    change only when the load really does, not with every message."""
    return min(len(str(queue_depth)) if queue_depth else 0, 6)


def start_clustering(config: Config, node: Node, api_host: str, api_port: int) -> ChannelServer | None:
    """Gossip membership, the mTLS peer channel and the forwarder; None for a single node."""
    key_file = config.security.cluster.gossip_key_file
    cluster = config.coordination.cluster
    if key_file is None:
        log.info("no gossip key: running as a single node")
        return None
    try:
        keyring = Keyring.from_file(key_file)
    except KeyringError as err:
        raise ConfigError(str(err)) from None
    advertise = advertise_address(config, api_host)
    api_advertised = advertise[0] if api_host in ("0.0.0.0", "::") else api_host
    swim_config = SwimConfig(
        gossip_interval=cluster.gossip_interval, fanout=cluster.gossip_fanout, probe_interval=cluster.probe_interval,
        probe_timeout=cluster.probe_timeout, suspicion_multiplier=cluster.suspicion_multiplier,
    )
    mtls = config.security.cluster.mtls
    server_tls = client_tls = None
    if mtls.enabled:
        if not (mtls.ca_cert and mtls.node_cert and mtls.node_key):
            raise ConfigError("security.cluster.mtls.enabled needs ca_cert, node_cert and node_key")
        try:
            certificates = CertificateReloader(mtls.ca_cert, mtls.node_cert, mtls.node_key)
        except (OSError, ssl.SSLError, ValueError) as err:
            raise ConfigError(f"security.cluster.mtls: cannot load {mtls.ca_cert}, {mtls.node_cert} and "
                              f"{mtls.node_key}: {err}") from None
        server_tls, client_tls = certificates.server, certificates.client
    else:
        certificates = None
        log.warning("security.cluster.mtls is disabled: node-to-node traffic is not authenticated")
    forwarder = Forwarder(node, client_tls, source=advertise[0])
    forwarder.certificates = certificates
    membership = Membership(
        node.id, bind=split_host_port(cluster.bind_addr, 7946), advertise=advertise, keyring=keyring,
        config=swim_config, seeds=list(cluster.seeds), key_file=key_file,
        meta=lambda: {"api": f"http://{api_advertised}:{api_port}", "version": node.version,
                      "agents": len(node.router.agents), "load": load_level(node.router.queue_depth()),
                      "names": forwarder.names()},
    )
    channel = ChannelServer(split_host_port(cluster.bind_addr, 7946), forwarder.receive, server_tls)
    channel.on_duplicate = node.metrics.peer_duplicates.inc
    channel.on_handshake_failure = node.metrics.tls_handshake_failures.labels("server").inc
    forwarder.on_certificates = lambda loaded: setattr(channel, "tls", loaded.server)
    if client_tls is not None:
        membership.join_via = forwarder.join_over_channel
        channel.join_handler = membership.handle_join
    node.membership, node.forwarder = membership, forwarder
    node.router.remote = forwarder.forward
    channel.start()
    forwarder.start()
    membership.start()
    log.info("gossip on %s:%d (advertised %s:%d), seeds: %s", *membership.bound, *advertise,
             ", ".join(cluster.seeds) or "none")
    return channel


def check_config(config: Config) -> None:
    """What the schema cannot say: settings that only make sense together."""
    cluster = config.coordination.cluster
    if config.security.cluster.gossip_key_file is None and (cluster.seeds or cluster.bootstrap_expect > 1):
        raise ConfigError("clustering needs security.cluster.gossip_key_file (caxton security gossip-key)")


def bind_tcp(host: str, port: int, key: str) -> socket.socket:
    """A listening socket on host:port, or StartupError naming the config key."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as err:
        raise StartupError(f"cannot bind {key} {host}:{port}: {err.strerror or err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise StartupError(f"cannot bind {key} {host}:{port}: {err.strerror or err}") from None
    return sock


def check_gossip_port(config: Config) -> None:
    """Tries the gossip port (UDP and TCP) before anything is created; the real bind comes later."""
    if config.security.cluster.gossip_key_file is None:
        return
    host, port = split_host_port(config.coordination.cluster.bind_addr, 7946)
    bind_tcp(host, port, "coordination.cluster.bind_addr").close()
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, port))
    except OSError as err:
        raise StartupError(f"cannot bind coordination.cluster.bind_addr {host}:{port} (UDP): "
                           f"{err.strerror or err}") from None


class _LateRegistry:
    """The metrics server binds before the node (and its registry) exists."""

    def __init__(self) -> None:
        self.target: Any = None

    def collect(self) -> Any:
        return self.target.collect() if self.target is not None else iter(())

    def restricted_registry(self, names: Any) -> Any:
        return self.target.restricted_registry(names)


def serve(config: Config) -> None:
    check_config(config)
    tokens = read_tokens(config.security.api.token_file)
    api_host, api_port = split_host_port(config.node.api_addr, 8080)
    metrics_host, metrics_port = split_host_port(config.node.metrics_addr, 9090)
    check_data_dir(config.node.data_dir)
    api_socket = bind_tcp(api_host, api_port, "node.api_addr")
    registry = _LateRegistry()
    try:
        try:
            metrics_server, _ = start_http_server(metrics_port, metrics_host, registry=registry)
        except OSError as err:
            raise StartupError(f"cannot bind node.metrics_addr {metrics_host}:{metrics_port}: "
                               f"{err.strerror or err}") from None
        try:
            check_gossip_port(config)
            lock = lock_data_dir(config.node.data_dir)
        except StartupError:
            metrics_server.shutdown()
            metrics_server.server_close()
            raise
    except StartupError:
        api_socket.close()
        raise
    try:
        _run(config, tokens, api_socket, metrics_server, registry)
    finally:
        lock.release()


def _run(config: Config, tokens: TokenSet, api_socket: socket.socket, metrics_server: Any,
         registry: _LateRegistry) -> None:
    api_host, api_port = split_host_port(config.node.api_addr, 8080)
    metrics_host, metrics_port = split_host_port(config.node.metrics_addr, 9090)
    try:
        node = Node(config, version=node_version())
    except (OSError, sqlite3.Error) as err:
        metrics_server.shutdown()
        api_socket.close()
        raise StartupError(f"cannot open the node's state in {config.node.data_dir}: {err}") from None
    registry.target = node.metrics.registry
    channel = None
    try:
        try:
            channel = start_clustering(config, node, api_host, api_port)
        except OSError as err:
            raise StartupError(f"cannot start gossip on {config.coordination.cluster.bind_addr}: "
                               f"{err.strerror or err}") from None
        log.info("node %s (version %s) serving API on %s:%d, metrics on %s:%d",
                 node.id, node.version, api_host, api_port, metrics_host, metrics_port)
        server = _GracefulServer(uvicorn.Config(
            create_app(node, tokens), host=api_host, port=api_port, log_level="warning", access_log=False,
        ))
        server.run(sockets=[api_socket])
    finally:
        metrics_server.shutdown()
        if node.membership is not None:
            node.membership.stop(leave=True)
        if node.forwarder is not None:
            node.forwarder.stop()
        if channel is not None:
            channel.stop()
        node.close()
        api_socket.close()
        log.info("node %s stopped", node.id)
