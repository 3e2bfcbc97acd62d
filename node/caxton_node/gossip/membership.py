"""Runs SWIM over UDP for a node: one thread, one socket, encrypted packets.

Seeds are resolved on every join attempt (in Kubernetes they are the headless
Service's DNS names, which appear as pods start), and a node that knows no peer
keeps trying to join, so pods may start in any order.
"""

from __future__ import annotations

import hashlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from caxton_node.gossip.swim import Addr, Member, State, Swim, SwimConfig
from caxton_node.gossip.transport import MAX_PACKET, Keyring, KeyringError

log = logging.getLogger("caxton.gossip")

JOIN_RETRY = 1.0
TICK = 0.02
KEY_CHECK_INTERVAL = 2.0  # seconds between looks at the gossip key file


def _digest(path: Path | None) -> bytes:
    try:
        return hashlib.sha256(path.read_bytes()).digest() if path is not None else b""
    except OSError:
        return b""


def resolve(seed: str, default_port: int = 7946) -> list[Addr]:
    host, _, port = seed.rpartition(":")
    if not host:
        host, port = seed, str(default_port)
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), socket.AF_INET, socket.SOCK_DGRAM)
    except (socket.gaierror, ValueError):
        return []
    return sorted({(str(info[4][0]), int(info[4][1])) for info in infos})


class Membership:
    def __init__(self, node_id: str, *, bind: Addr, advertise: Addr, keyring: Keyring, config: SwimConfig,
                 seeds: list[str], meta: Callable[[], dict[str, Any]], key_file: Path | None = None) -> None:
        self.keyring = keyring
        # Re-read while running (content, not mtime: a kubelet rewrites Secret files), so a key
        # rotates in three edits of the file and no restart: add, move first, drop the old one.
        self.key_file = key_file
        self._key_stamp = _digest(key_file)
        self._keys_checked = 0.0
        self.seeds = seeds
        self._meta = meta
        self.swim = Swim(node_id, advertise, config=config, meta=meta(), now=time.monotonic())
        self.swim.listeners.append(self._log_change)
        self.dropped_packets = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(bind)
        self._sock.setblocking(False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gossip", daemon=True)
        self._last_join = 0.0
        self._last_meta = 0.0
        # When set, joins go through this (the mTLS channel) instead of plain gossip, so a
        # node whose certificate the cluster CA did not sign cannot join.
        self.join_via: Callable[[Addr, dict[str, Any]], dict[str, Any] | None] | None = None

    @property
    def bound(self) -> Addr:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def _log_change(self, member: Member, previous: State | None) -> None:
        if member.id == self.swim.id:
            return
        before = previous.name.lower() if previous is not None else "unknown"
        after = member.state.name.lower()
        # The extras make the event machine-readable (GET /v1/cluster/events; the operator's Events).
        log.info("member %s: %s -> %s (incarnation %d)", member.id, before, after, member.incarnation,
                 extra={"member": member.id, "previous": before, "state": after})

    def _send(self, sends: list[tuple[Addr, dict[str, Any]]]) -> None:
        for addr, packet in sends:
            data = self.keyring.seal(packet)
            if len(data) > MAX_PACKET:
                log.warning("gossip packet of %d bytes to %s dropped (too large)", len(data), addr)
                continue
            try:
                self._sock.sendto(data, addr)
            except OSError as err:  # unreachable peers are SWIM's business, not ours
                log.debug("gossip send to %s failed: %s", addr, err)

    def _maybe_join(self, now: float) -> None:
        alone = len(self.swim.live_members()) <= 1
        if not self.seeds or not alone or now - self._last_join < JOIN_RETRY:
            return
        self._last_join = now
        addrs = [a for seed in self.seeds for a in resolve(seed) if a != self.swim.me.addr]
        if not addrs:
            return
        sends = self.swim.join(addrs, now)
        if self.join_via is None:
            self._send(sends)
            return
        for addr, packet in sends:
            sync = self.join_via(addr, packet)
            if sync is not None:
                self._send(self.swim.receive(sync, time.monotonic()))
                return

    def force_leave(self, member_id: str) -> bool:
        with self._lock:
            return self.swim.force_leave(member_id, time.monotonic())

    def handle_join(self, packet: dict[str, Any]) -> dict[str, Any]:
        """A join that arrived over the mTLS channel: answer with the full state sync."""
        with self._lock:
            replies = self.swim.receive(packet, time.monotonic())
        return replies[0][1] if replies else {}

    def _run(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._sock], [], [], TICK)
            now = time.monotonic()
            with self._lock:
                if readable:
                    self._drain(now)
                if now - self._last_meta > 1.0:
                    self._last_meta = now
                    self.swim.set_meta(self._meta(), now)
                self._maybe_join(now)
                self._send(self.swim.tick(now))
            self._maybe_reload_keys(now)

    def _maybe_reload_keys(self, now: float) -> None:
        if self.key_file is None or now - self._keys_checked < KEY_CHECK_INTERVAL:
            return
        self._keys_checked = now
        stamp = _digest(self.key_file)
        if not stamp or stamp == self._key_stamp:
            return
        self._key_stamp = stamp
        try:
            keyring = Keyring.from_file(self.key_file)
        except KeyringError as err:
            log.warning("gossip key file changed but cannot be used, keeping the current keys: %s", err)
            return
        self.keyring = keyring
        described = keyring.describe()
        log.info("reloaded the gossip keyring from %s: %d key(s), primary %s", self.key_file,
                 described["keys"], described["primary"])

    def _drain(self, now: float) -> None:
        for _ in range(256):
            try:
                data, _addr = self._sock.recvfrom(MAX_PACKET + 1024)
            except BlockingIOError:
                return
            except OSError:
                return
            packet = self.keyring.open(data)
            if packet is None:
                self.dropped_packets += 1
                if self.dropped_packets in (1, 10, 100) or self.dropped_packets % 1000 == 0:
                    log.warning("dropped %d gossip packet(s) that failed authentication", self.dropped_packets)
                continue
            try:
                self._send(self.swim.receive(packet, now))
            except (KeyError, TypeError, ValueError, IndexError) as err:
                log.warning("malformed gossip packet: %s", err)

    def members(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            members = list(self.swim.members.values())
        return [{
            "id": m.id,
            "state": m.state.name.lower(),
            "incarnation": m.incarnation,
            "address": f"{m.addr[0]}:{m.addr[1]}",
            "lastSeenSecondsAgo": 0.0 if m.id == self.swim.id else round(now - m.last_seen, 1),
            "stateForSeconds": round(now - m.state_since, 1),
            **{k: v for k, v in m.meta.items() if k in ("api", "version", "agents", "load")},
        } for m in sorted(members, key=lambda m: m.id)]

    def snapshot(self) -> list[Member]:
        """Copies of the members as this node sees them now (consistent with each other)."""
        with self._lock:
            return [replace(m, meta=dict(m.meta)) for m in self.swim.members.values()]

    def rtt_samples(self) -> list[float]:
        """Round trips (seconds) of the recent direct probes, oldest first."""
        with self._lock:
            return list(self.swim.probe_rtts)

    def counts(self) -> dict[str, int]:
        with self._lock:
            states = [m.state for m in self.swim.members.values()]
        return {s.name.lower(): states.count(s) for s in State}

    def last_rtt(self) -> float:
        rtts = self.swim.probe_rtts
        return rtts[-1] if rtts else 0.0

    def stop(self, *, leave: bool = True) -> None:
        if leave and self._thread.is_alive():
            with self._lock:
                self._send(self.swim.leave(time.monotonic()))
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
