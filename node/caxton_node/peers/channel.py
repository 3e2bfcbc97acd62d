"""The node-to-node channel: TCP on :7946 with mutual TLS and msgpack frames.

Each node verifies its peer's certificate against the cluster CA and checks the
certificate's CN against the node id it meant to reach (client side) or a
syntactically valid node id (server side); a wrong CA or CN is refused and
logged. Frames are a 4-byte big-endian length and a msgpack map. A `msg` frame
carries one message and is answered by an `ack` frame with the same sequence
number, so a sender knows exactly what arrived; it retries what was not acked,
and the receiver drops repeats by message id, so a retry never delivers twice (a message it
only relays to another node, because its receiver moved, is not remembered: the node that
takes it does the de-duplication).
"""

from __future__ import annotations

import hashlib
import logging
import socket
import ssl
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

log = logging.getLogger("caxton.peers")

MAX_FRAME = 1 << 20
_HEADER = struct.Struct(">I")


class ChannelError(RuntimeError):
    pass


def server_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=str(ca))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile=str(ca))
    ctx.check_hostname = False  # peers are named by node id (the CN), checked below
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class HandshakeRefused(ChannelError):
    """A TLS handshake with a peer failed on trust or identity (not a dropped connection)."""


def is_handshake_failure(err: BaseException) -> bool:
    """A refused handshake (unknown CA, bad certificate, wrong CN); a peer that hung up
    mid-handshake or timed out is the network's doing and is not counted."""
    if isinstance(err, HandshakeRefused):
        return True
    return isinstance(err, ssl.SSLError) and not isinstance(err, ssl.SSLEOFError | ssl.SSLZeroReturnError)


class CertificateReloader:
    """The node's mTLS contexts, rebuilt from the files when they change, so renewal and
    CA rotation need no restart.

    Each load builds fresh contexts rather than adding to the live ones: an SSLContext's
    trust store can only grow, and the last phase of a CA rotation must drop the old CA.
    New connections use the new contexts; established ones keep theirs. `report()` says
    what is loaded (fingerprints of the trusted CAs and of the served leaf), which is what
    the operator confirms each rotation phase by.
    """

    def __init__(self, ca: Path, cert: Path, key: Path) -> None:
        self.paths = (ca, cert, key)
        self._stamp = self._current()
        self.server, self.client = server_context(ca, cert, key), client_context(ca, cert, key)
        self._facts = self._describe(ca.read_bytes(), cert.read_bytes())
        self.loaded_at = time.time()
        self.reloads = 0

    def _current(self) -> bytes:
        # Content, not mtimes: a kubelet may rewrite unchanged Secret files.
        try:
            return hashlib.sha256(b"".join(path.read_bytes() for path in self.paths)).digest()
        except OSError:
            return b""

    @staticmethod
    def _describe(ca_pem: bytes, cert_pem: bytes) -> dict[str, Any]:
        from caxton_node import pki  # cryptography: only nodes with mTLS pay for the import

        return {"trusted": [pki.describe(c) for c in pki.load_bundle(ca_pem)],
                "leaf": pki.describe(pki.load_bundle(cert_pem)[0])}

    def check(self) -> bool:
        """Reloads if the files changed since the last look; True when it did."""
        stamp = self._current()
        if not stamp or stamp == self._stamp:
            return False
        ca, cert, key = self.paths
        try:
            ca_pem, cert_pem = ca.read_bytes(), cert.read_bytes()
            server, client = server_context(ca, cert, key), client_context(ca, cert, key)
            facts = self._describe(ca_pem, cert_pem)
        except (OSError, ssl.SSLError, ValueError, IndexError) as err:
            log.warning("certificate files changed but cannot be loaded yet: %s", err)
            return False
        self.server, self.client, self._facts = server, client, facts
        self._stamp = stamp
        self.loaded_at = time.time()
        self.reloads += 1
        log.info("reloaded the node certificate from %s: serving %s, trusting %s", cert,
                 facts["leaf"]["fingerprint"][:16], ", ".join(c["fingerprint"][:16] for c in facts["trusted"]))
        return True

    def report(self) -> dict[str, Any]:
        return {**self._facts, "loadedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
                "reloads": self.reloads}


def peer_common_name(sock: socket.socket) -> str:
    if not isinstance(sock, ssl.SSLSocket):
        return ""
    cert: dict[str, Any] = dict(sock.getpeercert() or {})
    for rdn in cert.get("subject", ()):
        for attribute in rdn:
            if attribute[0] == "commonName":
                return str(attribute[1])
    return ""


def encode_frame(frame: dict[str, Any]) -> bytes:
    body = msgpack.packb(frame, use_bin_type=True)
    return _HEADER.pack(len(body)) + body


def send_frame(sock: socket.socket, frame: dict[str, Any]) -> None:
    sock.sendall(encode_frame(frame))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("peer closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> dict[str, Any]:
    (length,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if length > MAX_FRAME:
        raise ChannelError(f"frame of {length} bytes exceeds {MAX_FRAME}")
    frame = msgpack.unpackb(_recv_exact(sock, length), raw=False)
    if not isinstance(frame, dict):
        raise ChannelError("frame is not a map")
    return frame


class Deduplicator:
    """Remembers the last `size` message ids seen, so retried frames are acked, not redelivered."""

    def __init__(self, size: int = 100_000) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def first_time(self, msg_id: str) -> bool:
        with self._lock:
            if msg_id in self._seen:
                return False
            self._seen[msg_id] = None
            if len(self._seen) > self._size:
                self._seen.popitem(last=False)
            return True

    def forget(self, msg_id: str) -> None:
        """A message that was refused (queue full, receiver not here): its retry must be handled, not dropped."""
        with self._lock:
            self._seen.pop(msg_id, None)


Handler = Callable[[dict[str, Any], str], tuple[bool, str]]
JoinHandler = Callable[[dict[str, Any]], dict[str, Any]]


class ChannelServer:
    """Accepts peer connections and hands each `msg` frame to `handler(message, peer_id)`."""

    def __init__(self, bind: tuple[str, int], handler: Handler, tls: ssl.SSLContext | None) -> None:
        self.handler = handler
        self.join_handler: JoinHandler | None = None  # set by membership: gossip joins over mTLS
        self.tls = tls
        self.dedup = Deduplicator()
        self.on_duplicate: Callable[[], None] = lambda: None  # counts repeats dropped (metrics)
        self.refused = 0
        self.on_handshake_failure: Callable[[], None] = lambda: None  # counts refused handshakes (metrics)
        self._sock = socket.create_server(bind, reuse_port=False)
        self._sock.settimeout(0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="peer-accept", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, addr), name=f"peer-{addr[0]}", daemon=True).start()

    def _serve(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        # Small frames (acks) must not wait for Nagle's algorithm and delayed ACKs (~40 ms).
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self.tls is not None:
                conn.settimeout(5)
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as err:
                    self.refused += 1
                    if is_handshake_failure(err):
                        self.on_handshake_failure()
                    log.warning("refused peer connection from %s:%d: %s", addr[0], addr[1], err)
                    conn.close()
                    return
            conn.settimeout(None)
            verified = peer_common_name(conn)
            while not self._stop.is_set():
                frame = recv_frame(conn)
                if frame.get("t") == "join" and self.join_handler is not None:
                    send_frame(conn, {"t": "sync", "p": self.join_handler(frame["p"])})
                    continue
                if frame.get("t") != "msg":
                    continue
                # With mTLS the certificate names the peer; without, we have only its word.
                peer = verified or str(frame.get("from", f"{addr[0]}:{addr[1]}"))
                message = frame["m"]
                msg_id = str(message.get("id", ""))
                if self.dedup.first_time(msg_id):
                    ok, error = self.handler(message, peer)
                    # Refused (full, receiver unknown) or only relayed to another node: not taken
                    # here, so a resend or a later relay through this node must be handled again.
                    if not ok or error == "relayed":
                        self.dedup.forget(msg_id)
                else:
                    self.on_duplicate()
                    ok, error = True, ""
                send_frame(conn, {"t": "ack", "seq": frame["seq"], "ok": ok, "err": error})
        except (ConnectionError, OSError, ChannelError, ValueError, KeyError):
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=2)


class PeerConnection:
    """A persistent client connection to one peer (used by one sender thread)."""

    def __init__(self, local_id: str, peer_id: str, addr: tuple[str, int], tls: ssl.SSLContext | None,
                 source: str | None = None) -> None:
        self.local_id = local_id
        self.peer_id = peer_id
        self.addr = addr
        self.tls = tls
        self.source = source
        self._sock: socket.socket | None = None
        self._seq = 0

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.addr, timeout=2,
                                        source_address=(self.source, 0) if self.source else None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock)
            except ssl.SSLError as err:
                sock.close()
                if is_handshake_failure(err):
                    raise HandshakeRefused(f"TLS handshake with {self.addr[0]}:{self.addr[1]} refused: {err}") from err
                raise
            cn = peer_common_name(sock)
            if self.peer_id and cn != self.peer_id:
                sock.close()
                raise HandshakeRefused(f"peer at {self.addr[0]}:{self.addr[1]} presented CN={cn!r}, "
                                   f"expected {self.peer_id!r}")
        sock.settimeout(5)
        return sock

    def send_batch(self, messages: list[dict[str, Any]]) -> list[tuple[bool, str]]:
        """Sends messages pipelined and returns each one's (ok, error) from the peer's acks."""
        if self._sock is None:
            self._sock = self._connect()
        first = self._seq + 1
        frames = []
        for message in messages:
            self._seq += 1
            frames.append(encode_frame({"t": "msg", "seq": self._seq, "from": self.local_id, "m": message}))
        self._sock.sendall(b"".join(frames))  # one TLS record burst for the whole batch
        results: dict[int, tuple[bool, str]] = {}
        while len(results) < len(messages):
            frame = recv_frame(self._sock)
            if frame.get("t") == "ack":
                results[int(frame["seq"])] = (bool(frame["ok"]), str(frame.get("err", "")))
        return [results[first + i] for i in range(len(messages))]

    def join(self, packet: dict[str, Any]) -> dict[str, Any]:
        """Sends a gossip join over this (mTLS) connection and returns the peer's state sync."""
        if self._sock is None:
            self._sock = self._connect()
        send_frame(self._sock, {"t": "join", "p": packet})
        while True:
            frame = recv_frame(self._sock)
            if frame.get("t") == "sync":
                return dict(frame["p"])

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
