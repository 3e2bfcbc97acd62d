"""SWIM rules on a simulated network with a fake clock (the real sockets are tested elsewhere)."""

from __future__ import annotations

import random

import pytest
from caxton_node.gossip.swim import State, Swim, SwimConfig, _overrides, lifeguard_timeout

CONFIG = SwimConfig(gossip_interval=0.2, fanout=3, probe_interval=1.0, probe_timeout=0.5, suspicion_multiplier=4)
STEP = 0.05


class Network:
    """Delivers packets between Swim instances instantly, except across cut links."""

    def __init__(self, size: int, seed: int = 7, config: SwimConfig = CONFIG) -> None:
        self.now = 0.0
        self.nodes = {f"n{i}": Swim(f"n{i}", ("127.0.0.1", 7000 + i), config=config, now=0.0,
                                    rng=random.Random(seed + i)) for i in range(size)}
        self.by_addr = {s.me.addr: s for s in self.nodes.values()}
        self.down: set[str] = set()
        self.cut: set[frozenset[str]] = set()

    def deliver(self, sender: Swim, sends: list[tuple[tuple[str, int], dict]]) -> None:
        queue = [(sender, addr, packet) for addr, packet in sends]
        while queue:
            src, addr, packet = queue.pop(0)
            dst = self.by_addr.get(addr)
            if dst is None or src.id in self.down or dst.id in self.down or frozenset((src.id, dst.id)) in self.cut:
                continue
            queue += [(dst, a, p) for a, p in dst.receive(packet, self.now)]

    @classmethod
    def formed(cls, size: int, config: SwimConfig = CONFIG) -> Network:
        """A network whose members have all joined through n0 and converged."""
        net = cls(size, config=config)
        net.join_all()
        net.run(2.0)
        return net

    def join_all(self) -> None:
        seed = self.nodes["n0"].me.addr
        for node in self.nodes.values():
            if node.id != "n0":
                self.deliver(node, node.join([seed], self.now))

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += STEP
            for node in self.nodes.values():
                if node.id not in self.down:
                    self.deliver(node, node.tick(self.now))

    def restart(self, node_id: str, seed: int) -> Swim:
        """Replaces `node_id` with a fresh instance (incarnation 0) at the same address, reachable again."""
        old = self.nodes[node_id]
        fresh = Swim(node_id, old.me.addr, config=CONFIG, now=self.now, rng=random.Random(seed))
        self.nodes[node_id] = fresh
        self.by_addr[fresh.me.addr] = fresh
        self.down.discard(node_id)
        return fresh

    def view(self, of: str) -> dict[str, State]:
        return {m.id: m.state for m in self.nodes[of].members.values()}


def test_members_converge_after_joining_through_a_seed() -> None:
    net = Network.formed(5)
    for node_id in net.nodes:
        assert net.view(node_id) == {f"n{i}": State.ALIVE for i in range(5)}


def test_a_dead_member_is_suspected_then_failed_within_the_configured_times() -> None:
    net = Network.formed(5)
    net.down.add("n3")
    suspected_at = failed_at = None
    timeout = net.nodes["n0"].suspicion_timeout()
    while net.now < 30 and failed_at is None:
        net.run(STEP)
        states = {net.view(n)["n3"] for n in net.nodes if n != "n3"}
        if suspected_at is None and State.SUSPECT in states:
            suspected_at = net.now
        if states == {State.FAILED}:
            failed_at = net.now
    assert suspected_at is not None and failed_at is not None
    # Someone probes n3 within one round of probe periods; failure follows the suspicion timeout.
    assert suspected_at <= 2.0 + 5 * CONFIG.probe_interval
    assert failed_at - suspected_at <= timeout + 2 * CONFIG.probe_interval


@pytest.mark.parametrize(("max_multiplier", "confirmations", "expected", "timeout"), [
    (1, 0, 2, 4.0),    # Lifeguard off: the base timeout
    (6, 0, 0, 4.0),    # too few members to expect confirmations: the base timeout
    (6, 0, 2, 24.0),   # nobody confirmed yet: the longest wait
    (6, 1, 2, 24.0 - 20.0 * 0.6309297535714574),  # log(2)/log(3) of the way down
    (6, 2, 2, 4.0),    # as many confirmations as expected: the base timeout
    (6, 5, 2, 4.0),    # never below it
])
def test_lifeguard_timeout_shrinks_with_confirmations(max_multiplier: int, confirmations: int, expected: int,
                                                      timeout: float) -> None:
    assert lifeguard_timeout(4.0, max_multiplier, confirmations, expected) == pytest.approx(timeout)


def test_with_lifeguard_other_members_confirm_a_suspicion_and_it_ends_sooner_than_the_longest_wait() -> None:
    config = SwimConfig(gossip_interval=0.2, fanout=3, probe_interval=1.0, probe_timeout=0.5,
                        suspicion_multiplier=4, suspicion_max_multiplier=6)
    net = Network.formed(10, config)
    net.down.add("n9")
    suspected_at = None
    confirmed = False
    while net.now < 120 and {net.view(n)["n9"] for n in net.nodes if n != "n9"} != {State.FAILED}:
        net.run(STEP)
        if suspected_at is None and any(net.view(n)["n9"] == State.SUSPECT for n in net.nodes):
            suspected_at = net.now
        confirmed = confirmed or any(len(net.nodes[n]._suspectors.get("n9", ())) > 1 for n in net.nodes)
    assert suspected_at is not None
    assert {net.view(n)["n9"] for n in net.nodes if n != "n9"} == {State.FAILED}
    assert confirmed, "no member heard a second, independent suspicion"
    base = net.nodes["n0"].suspicion_timeout()
    # Unconfirmed, the first suspicion would last 6 x base; confirmed, everyone fails n9 well before that.
    assert net.now - suspected_at < 3 * base


def test_a_suspected_live_member_refutes_with_a_higher_incarnation() -> None:
    net = Network.formed(3)
    net.cut.add(frozenset(("n0", "n2")))
    net.cut.add(frozenset(("n1", "n2")))
    net.run(1.5 * CONFIG.probe_interval + 1)
    assert State.SUSPECT in {net.view("n0")["n2"], net.view("n1")["n2"]}
    net.cut.clear()
    net.run(3.0)
    assert net.view("n0")["n2"] == State.ALIVE
    assert net.nodes["n2"].me.incarnation >= 1


def test_a_failed_member_rejoins_when_it_comes_back() -> None:
    net = Network.formed(3)
    net.down.add("n2")
    net.run(20.0)
    assert net.view("n0")["n2"] == State.FAILED
    # Restarted: a fresh instance (incarnation 0) joins through the seed.
    fresh = net.restart("n2", seed=99)
    net.deliver(fresh, fresh.join([net.nodes["n0"].me.addr], net.now))
    net.run(3.0)
    assert net.view("n0")["n2"] == State.ALIVE
    assert net.view("n1")["n2"] == State.ALIVE
    assert fresh.me.incarnation > 0


def test_graceful_leave_is_not_a_failure() -> None:
    net = Network.formed(3)
    net.deliver(net.nodes["n1"], net.nodes["n1"].leave(net.now))
    net.down.add("n1")
    net.run(1.0)
    assert net.view("n0")["n1"] == State.LEFT


def test_precedence_rules() -> None:
    assert _overrides(State.SUSPECT, 1, State.ALIVE, 1)
    assert not _overrides(State.ALIVE, 1, State.SUSPECT, 1)
    assert _overrides(State.ALIVE, 2, State.SUSPECT, 1)
    assert not _overrides(State.ALIVE, 3, State.ALIVE, 3)
    assert _overrides(State.FAILED, 1, State.SUSPECT, 1)
    assert not _overrides(State.ALIVE, 1, State.FAILED, 1)
    assert _overrides(State.ALIVE, 2, State.FAILED, 1)
    assert not _overrides(State.SUSPECT, 0, State.ALIVE, 1)


def test_both_sides_of_a_healed_partition_find_each_other_again() -> None:
    net = Network.formed(5)
    minority, majority = {"n3", "n4"}, {"n0", "n1", "n2"}
    net.cut |= {frozenset((a, b)) for a in minority for b in majority}
    net.run(20.0)
    assert net.view("n0")["n3"] == State.FAILED
    assert net.view("n3")["n0"] == State.FAILED
    net.cut.clear()
    net.run(15.0)
    for node_id in net.nodes:
        assert set(net.view(node_id).values()) == {State.ALIVE}, (node_id, net.view(node_id))


def test_a_restarted_member_learns_every_peer_even_when_nothing_changes() -> None:
    net = Network.formed(4)
    net.down.add("n3")
    net.run(20.0)
    # It comes back and is first reached by a peer's reconnect, not through its own join.
    net.restart("n3", seed=5)
    net.run(CONFIG.reconnect_interval + CONFIG.push_pull_interval + 2.0)
    assert net.view("n3") == {f"n{i}": State.ALIVE for i in range(4)}


def test_probe_round_trips_are_kept_as_a_distribution() -> None:
    net = Network.formed(3)
    net.run(20.0)
    # One probe per period per node: `cluster performance` takes percentiles over all of them.
    assert len(net.nodes["n0"].probe_rtts) >= 15


def test_force_leave_forgets_a_failed_member_everywhere_and_only_a_failed_one() -> None:
    net = Network.formed(4)
    assert not net.nodes["n0"].force_leave("n3", net.now)  # alive: it must be drained, not forgotten
    net.down.add("n3")
    net.run(20.0)
    assert net.view("n0")["n3"] == State.FAILED
    assert net.nodes["n0"].force_leave("n3", net.now)
    net.run(2.0)  # gossiped: every other member now sees it left, so it no longer counts
    assert {net.view(n)["n3"] for n in ("n0", "n1", "n2")} == {State.LEFT}
    assert not net.nodes["n0"].force_leave("nobody", net.now) and not net.nodes["n0"].force_leave("n0", net.now)
