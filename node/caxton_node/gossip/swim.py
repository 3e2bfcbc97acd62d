"""SWIM membership as a pure state machine (no sockets, no clock of its own).

The caller feeds it time (`tick(now)`) and packets (`receive(packet, now)`) and
sends the packets it returns. That keeps every protocol rule testable with a
fake clock, while the transport (transport.py) does the real UDP.

Protocol: every `probe_interval` ping one member (round-robin over a shuffled
list); without an ack within `probe_timeout`, ask `fanout` others to ping it
(ping-req); without any ack by the end of the period, suspect it. A suspect
that does not refute (by gossiping `alive` with a higher incarnation) within the
suspicion timeout (suspicion_multiplier x log10(n) probe periods, as in
memberlist) is failed. With `suspicion_max_multiplier` > 1 the timeout is
Lifeguard's instead: a fresh suspicion waits that many times longer, shrinking
to the base timeout as other members independently confirm it (each suspicion
names who raised it, as memberlist's suspect message does). State changes ride on every packet (piggybacking), each
retransmitted a bounded number of times, and every `gossip_interval` the
freshest updates are also pushed to `fanout` random members.
"""

from __future__ import annotations

import enum
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Addr = tuple[str, int]
PROBE_RTT_SAMPLES = 512
Packet = dict[str, Any]


class State(enum.IntEnum):
    # Ordered by precedence at equal incarnation: a later state wins.
    ALIVE = 0
    SUSPECT = 1
    FAILED = 2
    LEFT = 3


@dataclass
class Member:
    id: str
    addr: Addr
    incarnation: int = 0
    state: State = State.ALIVE
    meta: dict[str, Any] = field(default_factory=dict)
    state_since: float = 0.0
    last_seen: float = 0.0
    suspected_by: str = ""  # while suspect: the member whose suspicion we pass on

    def as_update(self) -> Packet:
        update = {"id": self.id, "addr": list(self.addr), "inc": self.incarnation, "state": int(self.state),
                  "meta": self.meta}
        if self.state == State.SUSPECT:
            update["by"] = self.suspected_by
        return update


@dataclass(frozen=True)
class SwimConfig:
    gossip_interval: float = 0.2
    fanout: int = 3
    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    suspicion_multiplier: int = 4
    # Lifeguard (memberlist's SuspicionMaxTimeoutMult, 6 in Serf): a fresh suspicion waits this many
    # times the suspicion timeout, down to 1x after suspicion_multiplier - 2 independent confirmations.
    # 1 keeps the timeout fixed.
    suspicion_max_multiplier: int = 1
    retransmit_multiplier: int = 4
    max_updates_per_packet: int = 20
    reap_failed_after: float = 3600.0
    # Failed members are not probed; a node retries one of them this often, so both
    # sides of a healed partition find each other again (Serf's reconnect).
    reconnect_interval: float = 2.0
    # Every so often a node swaps its whole member list with a random member (memberlist's
    # push-pull): SWIM spreads only changes, so a member that missed one learns it here.
    push_pull_interval: float = 5.0


@dataclass
class _Probe:
    target: str
    seq: int
    started: float
    indirect_sent: bool = False


@dataclass
class _Relay:
    """A ping-req we serve: ack `requester` if `target` answers our ping `seq`."""

    requester: Addr
    requester_seq: int
    expires: float


Send = tuple[Addr, Packet]
Listener = Callable[[Member, State | None], None]


class Swim:
    def __init__(self, node_id: str, addr: Addr, *, config: SwimConfig, meta: dict[str, Any] | None = None,
                 now: float = 0.0, rng: random.Random | None = None) -> None:
        self.id = node_id
        self.config = config
        self.rng = rng or random.Random()
        self.me = Member(node_id, addr, 0, State.ALIVE, dict(meta or {}), now, now)
        self.members: dict[str, Member] = {node_id: self.me}
        self._updates: dict[str, int] = {}  # member id -> remaining retransmissions
        self._probe_order: list[str] = []
        self._probe: _Probe | None = None
        self._next_probe = now
        self._next_gossip = now
        self._next_reconnect = now + config.reconnect_interval
        self._next_push_pull = now + config.push_pull_interval
        self._seq = 0
        self._relays: dict[int, _Relay] = {}
        self._suspectors: dict[str, set[str]] = {}  # suspect id -> members that raised or confirmed it
        self.listeners: list[Listener] = []
        # Round trips of the recent direct probes: `cluster performance` reports their distribution.
        self.probe_rtts: deque[float] = deque(maxlen=PROBE_RTT_SAMPLES)

    # -- helpers -----------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def live_members(self) -> list[Member]:
        return [m for m in self.members.values() if m.state in (State.ALIVE, State.SUSPECT)]

    def _others(self) -> list[Member]:
        return [m for m in self.live_members() if m.id != self.id]

    def _retransmits(self) -> int:
        n = max(len(self.live_members()), 1)
        return self.config.retransmit_multiplier * max(1, math.ceil(math.log10(n + 1)))

    def suspicion_timeout(self) -> float:
        n = max(len(self.live_members()), 1)
        return self.config.suspicion_multiplier * max(1.0, math.log10(n)) * self.config.probe_interval

    def suspect_timeout(self, member_id: str) -> float:
        """How long `member_id`'s suspicion lasts, given the confirmations heard so far."""
        expected = self.config.suspicion_multiplier - 2
        if len(self.live_members()) - 2 < expected:
            expected = 0  # too few members to expect confirmations (memberlist does the same)
        confirmations = max(len(self._suspectors.get(member_id, ())) - 1, 0)
        return lifeguard_timeout(self.suspicion_timeout(), self.config.suspicion_max_multiplier, confirmations,
                                 expected)

    def _confirm(self, member: Member, by: str) -> None:
        """Another member suspects `member` too: shorten the wait, and pass the confirmation on."""
        suspectors = self._suspectors.setdefault(member.id, set())
        if by and by not in suspectors:
            suspectors.add(by)
            member.suspected_by = by
            self._announce(member)

    def _announce(self, member: Member) -> None:
        self._updates[member.id] = self._retransmits()

    def _piggyback(self) -> list[Packet]:
        chosen = sorted(self._updates.items(), key=lambda kv: -kv[1])[: self.config.max_updates_per_packet]
        out = []
        for member_id, remaining in chosen:
            member = self.members.get(member_id)
            if member is None:
                self._updates.pop(member_id, None)
                continue
            out.append(member.as_update())
            if remaining <= 1:
                self._updates.pop(member_id, None)
            else:
                self._updates[member_id] = remaining - 1
        return out

    def _packet(self, kind: str, **fields: Any) -> Packet:
        return {"t": kind, "from": self.id, "addr": list(self.me.addr), **fields, "u": self._piggyback()}

    def _set_state(self, member: Member, state: State, incarnation: int, now: float) -> None:
        previous = member.state if member.id in self.members else None
        fresh_suspicion = state == State.SUSPECT and (previous != State.SUSPECT or incarnation != member.incarnation)
        member.state = state
        member.incarnation = incarnation
        member.state_since = now
        if fresh_suspicion:
            self._suspectors[member.id] = {member.suspected_by}
        elif state != State.SUSPECT:
            self._suspectors.pop(member.id, None)
        self._announce(member)
        for listener in self.listeners:
            listener(member, previous)

    # -- the local node ---------------------------------------------------------------------

    def set_meta(self, meta: dict[str, Any], now: float) -> None:
        """Publishes new metadata (agent count, load...) with a fresh incarnation."""
        if meta != self.me.meta:
            self.me.meta = dict(meta)
            self._set_state(self.me, State.ALIVE, self.me.incarnation + 1, now)

    def force_leave(self, member_id: str, now: float) -> bool:
        """Forgets a failed member for good, as Serf's force-leave does: it is gossiped as left, so
        it stops counting toward the quorum. False unless it is failed (a member that is still
        there must be drained and stopped instead; one that is alive after all refutes this)."""
        member = self.members.get(member_id)
        if member is None or member_id == self.id or member.state != State.FAILED:
            return False
        self._set_state(member, State.LEFT, member.incarnation, now)
        return True

    def join(self, seeds: list[Addr], now: float) -> list[Send]:
        self._announce(self.me)
        return [(seed, self._packet("join", seq=self._next_seq())) for seed in seeds if seed != self.me.addr]

    def leave(self, now: float) -> list[Send]:
        self._set_state(self.me, State.LEFT, self.me.incarnation + 1, now)
        targets = self._others()
        return [(m.addr, self._packet("gossip")) for m in targets]

    # -- applying updates -----------------------------------------------------------------------

    def _apply(self, update: Packet, now: float) -> None:
        member_id = update["id"]
        incoming_state = State(update["state"])
        incarnation = int(update["inc"])
        if member_id == self.id:
            # Someone thinks we are suspect or failed: refute with a higher incarnation.
            # A newer record of us (from before a restart) is outdone the same way.
            doubted = incoming_state != State.ALIVE and incarnation >= self.me.incarnation
            if self.me.state == State.ALIVE and (doubted or incarnation > self.me.incarnation):
                self._set_state(self.me, State.ALIVE, incarnation + 1, now)
            return
        member = self.members.get(member_id)
        addr = (str(update["addr"][0]), int(update["addr"][1]))
        if member is None:
            if incoming_state in (State.FAILED, State.LEFT):
                return  # never met it; nothing to forget
            member = Member(member_id, addr, incarnation, incoming_state, dict(update.get("meta") or {}), now, now,
                            suspected_by=str(update.get("by") or ""))
            self.members[member_id] = member
            if incoming_state == State.SUSPECT:
                self._suspectors[member_id] = {member.suspected_by}
            self._announce(member)
            for listener in self.listeners:
                listener(member, None)
            return
        if not _overrides(incoming_state, incarnation, member.state, member.incarnation):
            if incoming_state == member.state == State.SUSPECT and incarnation == member.incarnation:
                self._confirm(member, str(update.get("by") or ""))
            return
        if incoming_state == State.SUSPECT:
            member.suspected_by = str(update.get("by") or "")
        member.addr = addr
        member.meta = dict(update.get("meta") or member.meta)
        if incoming_state == State.ALIVE:
            member.last_seen = now
        if incoming_state != member.state or incarnation != member.incarnation:
            self._set_state(member, incoming_state, incarnation, now)

    def _heard_from(self, packet: Packet, now: float) -> None:
        member = self.members.get(packet["from"])
        if member is not None and member.state in (State.ALIVE, State.SUSPECT):
            member.last_seen = now

    # -- receiving ---------------------------------------------------------------------------------

    def receive(self, packet: Packet, now: float) -> list[Send]:
        for update in packet.get("u", []):
            self._apply(update, now)
        self._heard_from(packet, now)
        kind = packet.get("t")
        sender_addr = (str(packet["addr"][0]), int(packet["addr"][1]))
        out: list[Send] = []
        if kind == "ping":
            out.append((sender_addr, self._packet("ack", seq=packet["seq"])))
        elif kind == "ack":
            self._on_ack(packet, now, out)
        elif kind == "ping_req":
            target = self.members.get(packet["target"])
            if target is not None:
                seq = self._next_seq()
                self._relays[seq] = _Relay(sender_addr, packet["seq"], now + self.config.probe_interval)
                out.append((target.addr, self._packet("ping", seq=seq)))
        elif kind == "join":
            # A joiner gets everything we know, so it converges in one round trip.
            out.append((sender_addr, {**self._packet("sync", seq=packet["seq"]), "u": self._full_state()}))
        return out

    def _on_ack(self, packet: Packet, now: float, out: list[Send]) -> None:
        seq = packet["seq"]
        relay = self._relays.pop(seq, None)
        if relay is not None:
            out.append((relay.requester, self._packet("ack", seq=relay.requester_seq)))
            return
        probe = self._probe
        if probe is not None and probe.seq == seq:
            self.probe_rtts.append(now - probe.started)
            self._probe = None
            target = self.members.get(probe.target)
            if target is not None:
                target.last_seen = now

    # -- time -------------------------------------------------------------------------------------------

    def tick(self, now: float) -> list[Send]:
        out: list[Send] = []
        self._check_probe(now, out)
        if now >= self._next_probe:
            self._next_probe = now + self.config.probe_interval
            self._start_probe(now, out)
        self._check_suspects(now)
        if now >= self._next_gossip:
            self._next_gossip = now + self.config.gossip_interval
            if self._updates:
                others = self._others()
                for member in self.rng.sample(others, min(self.config.fanout, len(others))):
                    out.append((member.addr, self._packet("gossip")))
        if now >= self._next_reconnect:
            self._next_reconnect = now + self.config.reconnect_interval
            self._reconnect(out)
        if now >= self._next_push_pull:
            self._next_push_pull = now + self.config.push_pull_interval
            others = self._others()
            if others:
                target = self.rng.choice(others)
                out.append((target.addr, {**self._packet("join", seq=self._next_seq()), "u": self._full_state()}))
        self._relays = {seq: r for seq, r in self._relays.items() if r.expires > now}
        return out

    def _reconnect(self, out: list[Send]) -> None:
        failed = [m for m in self.members.values() if m.state == State.FAILED]
        if not failed:
            return
        target = self.rng.choice(failed)
        # Everything we know, including how we see it (so it refutes) and ourselves (so it takes us
        # back); its sync answer brings us its view in turn.
        out.append((target.addr, {**self._packet("join", seq=self._next_seq()), "u": self._full_state()}))

    def _full_state(self) -> list[Packet]:
        return [m.as_update() for m in self.members.values()]

    def _start_probe(self, now: float, out: list[Send]) -> None:
        if self._probe is not None:
            return
        if not self._probe_order:
            self._probe_order = [m.id for m in self._others()]
            self.rng.shuffle(self._probe_order)
        while self._probe_order:
            target = self.members.get(self._probe_order.pop())
            if target is not None and target.state in (State.ALIVE, State.SUSPECT):
                seq = self._next_seq()
                self._probe = _Probe(target.id, seq, now)
                packet = self._packet("ping", seq=seq)
                if target.state == State.SUSPECT:
                    # Tell a suspect directly, so it can refute even if the gossip has moved on.
                    packet["u"] = [*packet["u"], target.as_update()]
                out.append((target.addr, packet))
                return

    def _check_probe(self, now: float, out: list[Send]) -> None:
        probe = self._probe
        if probe is None:
            return
        target = self.members.get(probe.target)
        if target is None or target.state not in (State.ALIVE, State.SUSPECT):
            self._probe = None
            return
        if not probe.indirect_sent and now - probe.started >= self.config.probe_timeout:
            probe.indirect_sent = True
            helpers = [m for m in self._others() if m.id != probe.target]
            for helper in self.rng.sample(helpers, min(self.config.fanout, len(helpers))):
                out.append((helper.addr, self._packet("ping_req", seq=probe.seq, target=probe.target)))
        if now - probe.started >= self.config.probe_interval:
            self._probe = None
            if target.state == State.ALIVE:
                target.suspected_by = self.id
                self._set_state(target, State.SUSPECT, target.incarnation, now)
            elif target.state == State.SUSPECT:
                self._confirm(target, self.id)

    def _check_suspects(self, now: float) -> None:
        for member in list(self.members.values()):
            if member.state == State.SUSPECT and now - member.state_since >= self.suspect_timeout(member.id):
                self._set_state(member, State.FAILED, member.incarnation, now)
            elif member.state in (State.FAILED, State.LEFT) and \
                    now - member.state_since >= self.config.reap_failed_after:
                del self.members[member.id]


def lifeguard_timeout(base: float, max_multiplier: int, confirmations: int, expected: int) -> float:
    """Lifeguard's suspicion timeout (memberlist's suspicion.go): from `max_multiplier` x `base`
    down to `base`, logarithmically in the independent confirmations, reaching it at `expected`."""
    if max_multiplier <= 1 or expected < 1:
        return base
    longest = max_multiplier * base
    fraction = math.log(confirmations + 1) / math.log(expected + 1)
    return max(base, longest - fraction * (longest - base))


def _overrides(new_state: State, new_inc: int, old_state: State, old_inc: int) -> bool:
    """SWIM precedence: a higher incarnation wins; at equal incarnation the graver state wins,
    except that a failed or departed member only comes back with a higher incarnation."""
    if old_state in (State.FAILED, State.LEFT):
        return new_inc > old_inc or (new_inc == old_inc and new_state > old_state)
    if new_inc != old_inc:
        return new_inc > old_inc
    return new_state > old_state
