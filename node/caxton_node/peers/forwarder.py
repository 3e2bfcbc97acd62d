"""Cross-node delivery and partition handling.

The agent directory comes from gossip: every member publishes the names it
serves (agents and client mailboxes). A message for a name served elsewhere
goes into that peer's outbox, which is journaled like a local queue and sent
over the mTLS channel in order; it leaves the outbox only when the peer acks it.

Policy for a message whose peer is failed or unreachable (docs/clustering.md):
it waits in the outbox, and follows its receiver if the directory moves it to
another node; if nothing serves it after `max_hold`, it is dead-lettered.

Partitions: a node that reaches fewer than quorum members for longer than
`detection_timeout` is on the minority side; it turns read-only (deploy and
remove refused) and keeps queuing cross-partition messages, up to a bound. When
the quorum is back it replays the outboxes in order, exactly once (receivers
drop repeats by message id).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from caxton_node.messages import Message, MessageError, parse_message
from caxton_node.peers.channel import CertificateReloader, ChannelError, HandshakeRefused, PeerConnection
from caxton_node.routing.router import QueueFull, UnknownReceiver

if TYPE_CHECKING:
    import ssl

    from caxton_node.config import Config
    from caxton_node.gossip.membership import Membership
    from caxton_node.metrics import NodeMetrics
    from caxton_node.routing.router import Router
    from caxton_node.store import Store


class ForwardingNode(Protocol):
    """What the forwarder needs from the node it serves (the node module imports this one, so
    naming the parts here keeps the dependency one way)."""

    id: str
    router: Router
    store: Store
    metrics: NodeMetrics
    membership: Membership | None
    config: Config
    read_only_reason: str  # the forwarder sets it on the minority side of a partition

    def quorum(self) -> tuple[int, int]: ...

log = logging.getLogger("caxton.peers")

BATCH = 64
CERT_CHECK_INTERVAL = 5.0  # seconds between looks at the certificate files
MAX_NAMES = 500  # names published per node through gossip
MOVED_HOLD = 10.0  # seconds a message follows a moved receiver before it is dead-lettered
MOVED_POINTER = 60.0  # seconds a node sends what arrives for an agent it handed off to where it went


def message_from_wire(data: dict[str, Any]) -> Message:
    msg = parse_message(data)
    msg.id = str(data["id"])
    msg.ts_ms = int(data.get("ts_ms", msg.ts_ms))
    return msg


class Forwarder:
    def __init__(self, node: ForwardingNode, tls: ssl.SSLContext | None, *, source: str | None = None,
                 max_queued: int = 100_000, max_hold: float = 600.0) -> None:
        self.node = node
        self.tls = tls
        self.source = source
        self.max_queued = max_queued
        self.max_hold = max_hold
        self.outboxes: dict[str, deque[tuple[Message, float]]] = {}
        self._connections: dict[str, PeerConnection] = {}
        self._retry_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Learned return paths: a sender we heard from through a peer lives on that peer.
        self._return_routes: OrderedDict[str, str] = OrderedDict()
        self._minority_since: float | None = None
        self._partitioned = False
        self._replaying = False
        self._replay_count = 0
        self._refused_since: dict[str, float] = {}  # message id -> first "unknown receiver" from a peer
        # Agents handed off from here: name -> (node it went to, until when). Fresher than gossip,
        # which may still show the old holder or none: stragglers go straight to the new one.
        self._moved: dict[str, tuple[str, float]] = {}
        self.certificates: CertificateReloader | None = None  # renewed certificates, loaded live
        self.on_certificates: Callable[[CertificateReloader], None] | None = None  # e.g. the server's context
        self._certs_checked_at = 0.0
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -- the directory ------------------------------------------------------------------

    def names(self) -> list[str]:
        router = self.node.router
        return sorted([*router.agents, *router.mailboxes])[:MAX_NAMES]

    def locate(self, name: str) -> dict[str, Any] | None:
        """Where `name` is served: where this node handed it off to (for MOVED_POINTER seconds),
        else the gossip directory, then learned return paths."""
        membership = self.node.membership
        if membership is None:
            return None
        members = membership.swim.members
        moved = self._moved.get(name)
        if moved is not None:
            holder, until = moved
            member = members.get(holder)
            if time.monotonic() < until and member is not None and member.state.name in ("ALIVE", "SUSPECT"):
                return {"id": holder, "addr": member.addr, "state": member.state.name.lower()}
            self._moved.pop(name, None)
        for member in members.values():
            if member.id != membership.swim.id and name in member.meta.get("names", ()):
                return {"id": member.id, "addr": member.addr, "state": member.state.name.lower()}
        peer = self._return_routes.get(name)
        if peer is not None and peer in members:
            return {"id": peer, "addr": members[peer].addr, "state": members[peer].state.name.lower()}
        return None

    def serves(self, peer: str, name: str) -> bool:
        """Whether gossip shows `peer` alive and serving `name` (a handoff's precondition)."""
        membership = self.node.membership
        member = membership.swim.members.get(peer) if membership is not None else None
        return member is not None and member.state.name == "ALIVE" and name in member.meta.get("names", ())

    def handed_off(self, name: str, peer: str) -> None:
        """`name` now lives on `peer`: what still arrives here for it is sent there."""
        self._moved[name] = (peer, time.monotonic() + MOVED_POINTER)
        if len(self._moved) > 10_000:  # bounded: the oldest pointers go first
            self._moved.pop(next(iter(self._moved)))

    # -- accepting messages ------------------------------------------------------------------

    def queued(self) -> int:
        with self._lock:
            return sum(len(box) for box in self.outboxes.values())

    def give_up_queued(self, reason: str) -> int:
        """Dead-letters every message waiting for a peer: a partition was resolved in favour of
        the other side, so this side's queued writes are not replayed (they stay listed as dead
        letters with `reason`, for an operator to resend)."""
        with self._lock:
            boxes = list(self.outboxes.values())
            self.outboxes.clear()
        for box in boxes:
            for msg, _ in box:
                self.node.router.dead_letter(msg, reason)
        given_up = sum(len(box) for box in boxes)
        log.warning("Partition resolved against this node: %d queued write(s) dead-lettered (%s)", given_up, reason)
        return given_up

    def forward(self, msg: Message) -> bool:
        """Router hook: queue `msg` for the node serving its receiver; False if none does."""
        where = self.locate(msg.receiver)
        if where is None:
            return False
        with self._lock:
            if sum(len(box) for box in self.outboxes.values()) >= self.max_queued:
                raise QueueFull(f"outbound queue is full ({self.max_queued} messages)")
            self.outboxes.setdefault(where["id"], deque()).append((msg, time.monotonic()))
        self.node.store.enqueued(msg)
        self._wake.set()
        return True

    def receive(self, data: dict[str, Any], peer: str) -> tuple[bool, str]:
        """Channel handler: a message from a peer for a name served here."""
        try:
            msg = message_from_wire(data)
        except (MessageError, KeyError, ValueError) as err:
            return False, f"invalid: {err}"
        self._return_routes[msg.sender] = peer
        self._return_routes.move_to_end(msg.sender)
        if len(self._return_routes) > 100_000:
            self._return_routes.popitem(last=False)
        try:
            where = self.node.router.route(msg)
        except QueueFull:
            return False, "queue_full"
        except UnknownReceiver:
            return False, "unknown_receiver"
        self.node.metrics.peer_received.inc()
        # Relayed (its receiver moved on): the channel must not count it as seen here, or the same
        # message relayed back through this node later would be dropped as a repeat.
        return True, "relayed" if where == "remote" else ""

    def join_over_channel(self, addr: tuple[str, int], packet: dict[str, Any]) -> dict[str, Any] | None:
        """Membership's join, carried over mTLS: refused unless both sides trust each other's CA."""
        conn = PeerConnection(self.node.id, "", addr, self.tls, self.source)
        try:
            return conn.join(packet)
        except (OSError, ChannelError, ValueError, KeyError) as err:
            if isinstance(err, HandshakeRefused):
                self.node.metrics.tls_handshake_failures.labels("client").inc()
            log.warning("join through %s:%d failed: %s", addr[0], addr[1], err)
            return None
        finally:
            conn.close()

    # -- the sender loop ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            now = time.monotonic()
            try:
                if self.certificates is not None and now >= self._certs_checked_at + CERT_CHECK_INTERVAL:
                    self._certs_checked_at = now
                    self._reload_certificates()
                self._check_partition(now)
                self._forward_parked(now)
                # The minority side holds its writes until the heal, then replays them in order:
                # a link that comes back before gossip agrees must not leak part of them early.
                for peer in [] if self._partitioned else list(self.outboxes):
                    self._flush_peer(peer, now)
                if self._replaying and self.queued() == 0:
                    self._replaying = False
                    log.info("Cluster synchronized: outbox empty, %d messages replayed", self._replay_count)
            except Exception:
                log.exception("forwarder loop failed")

    def _reload_certificates(self) -> None:
        """New certificate files: new contexts for new connections, on both sides. Open peer
        connections are closed (unacked messages are resent, and dropped as repeats if they had
        arrived), so from now on every handshake shows what the node was given."""
        if self.certificates is None or not self.certificates.check():
            return
        self.tls = self.certificates.client
        if self.on_certificates is not None:
            self.on_certificates(self.certificates)
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()

    def _flush_peer(self, peer: str, now: float) -> None:
        if now < self._retry_at.get(peer, 0.0):
            return
        membership = self.node.membership
        member = membership.swim.members.get(peer) if membership else None
        with self._lock:
            box = self.outboxes.get(peer)
            batch = list(box)[:BATCH] if box else []
        if not batch:
            return
        if member is None or member.state.name in ("FAILED", "LEFT"):
            self._reroute(peer, now)
            return
        conn = self._connections.get(peer)
        if conn is None or conn.addr != member.addr:
            if conn is not None:
                conn.close()
            conn = self._connections[peer] = PeerConnection(self.node.id, peer, member.addr, self.tls, self.source)
        try:
            results = conn.send_batch([m.to_dict() for m, _ in batch])
        except (OSError, ChannelError, ValueError) as err:
            conn.close()
            if isinstance(err, HandshakeRefused):
                self.node.metrics.tls_handshake_failures.labels("client").inc()
                log.warning("sending to %s: %s", peer, err)
            self._retry_at[peer] = now + 0.5
            log.debug("sending to %s failed: %s", peer, err)
            return
        done = 0
        for (msg, _), (ok, error) in zip(batch, results, strict=True):
            if ok:
                self.node.store.delivered(msg.id)
                if self._refused_since:
                    self._refused_since.pop(msg.id, None)
                self.node.metrics.peer_sent.inc()
                done += 1
            elif error == "queue_full":
                self._retry_at[peer] = now + 0.2
                break
            elif error == "unknown_receiver" and self._follow_moved(msg, now):
                self._retry_at[peer] = now + 0.2
                done += 1
            else:
                self.node.router._dead(msg, f"remote_{error}")
                done += 1
        with self._lock:
            box = self.outboxes.get(peer)
            for _ in range(done):
                if box:
                    box.popleft()
        if done:
            self._wake.set()

    def _follow_moved(self, msg: Message, now: float) -> bool:
        """The peer no longer serves the receiver (it moved, and this node's directory is behind):
        route the message again, wherever the directory places it by then, for up to MOVED_HOLD
        seconds from the first refusal; False when that time is up or nobody serves it."""
        first = self._refused_since.setdefault(msg.id, now)
        if now - first > MOVED_HOLD:
            self._refused_since.pop(msg.id, None)
            return False
        try:
            self.node.router.route(msg)
        except (QueueFull, UnknownReceiver):
            self._refused_since.pop(msg.id, None)
            return False
        return True

    def _reroute(self, peer: str, now: float) -> None:
        """The peer is gone: follow re-placed receivers, dead-letter what waited too long."""
        with self._lock:
            box = self.outboxes.get(peer, deque())
            keep: deque[tuple[Message, float]] = deque()
            moved: list[tuple[Message, float]] = []
            for msg, since in box:
                where = self.locate(msg.receiver)
                if where is not None and where["id"] != peer:
                    moved.append((msg, since))
                elif now - since > self.max_hold:
                    self.node.router._dead(msg, "peer_unavailable")
                else:
                    keep.append((msg, since))
            self.outboxes[peer] = keep
            for msg, since in moved:
                where = self.locate(msg.receiver)
                assert where is not None
                self.outboxes.setdefault(where["id"], deque()).append((msg, since))
        self._retry_at[peer] = now + 0.5

    def _forward_parked(self, now: float) -> None:
        """Messages restored from the journal for remote receivers, once gossip knows where they are."""
        parked = self.node.router.parked
        for _ in range(len(parked)):
            msg, since = parked.popleft()
            if self.locate(msg.receiver) is not None:
                with self._lock:
                    where = self.locate(msg.receiver)
                    assert where is not None
                    self.outboxes.setdefault(where["id"], deque()).append((msg, since))
            elif now - since > self.max_hold:
                self.node.router._dead(msg, "peer_unavailable")
            else:
                parked.append((msg, since))

    # -- partitions -------------------------------------------------------------------------------

    def _check_partition(self, now: float) -> None:
        node = self.node
        membership = node.membership
        if membership is None:
            return
        counts = membership.counts()
        reachable = counts["alive"] + counts["suspect"]
        partition = node.config.coordination.partition
        expected, quorum = node.quorum()
        if reachable < quorum:
            if self._minority_since is None:
                self._minority_since = now
            if not self._partitioned and now - self._minority_since >= partition.detection_timeout:
                self._partitioned = True
                node.read_only_reason = (f"minority partition ({reachable} of {expected} members reachable, "
                                         f"quorum {quorum})")
                log.warning("Network partition detected: this node is on the minority side (%d of %d "
                            "reachable, quorum %d); read-only, queuing writes", reachable, expected, quorum)
            return
        self._minority_since = None
        if self._partitioned:
            self._partitioned = False
            node.read_only_reason = ""
            # Nothing is merged: the minority only held messages, so healing is replaying them.
            log.info("Partition healed: %d of %d members reachable (quorum %d), read-write again",
                     reachable, expected, quorum)
            self._replay_count = self.queued()
            log.info("Replaying %d queued messages", self._replay_count)
            self._replaying = True
            self._retry_at.clear()
            self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2)
        for conn in self._connections.values():
            conn.close()
