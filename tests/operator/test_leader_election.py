"""Leader election: the rules as a table, then two candidates playing them out on a real Lease
in the API server (with clocks the test moves, so expiry needs no sleeping)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from caxton_kube import Kube
from caxton_operator.leadership.election import (
    Observation,
    Record,
    Step,
    Timing,
    next_step,
    observe,
    still_leading,
)
from caxton_operator.leadership.lease import LeaseLock

from tests.support.cluster import ClusterUnderTest, temporary_namespace

ME, OTHER = "op-0_aaaa", "op-1_bbbb"


def rec(holder: str, version: str = "1", duration: float = 15) -> Record:
    return Record(holder=holder, lease_duration=duration, transitions=0, version=version)


@pytest.mark.parametrize(("record", "changed_at", "now", "step"), [
    (None, 0, 0, Step.CREATE),  # no Lease yet
    (rec(ME), 0, 100, Step.RENEW),  # ours, however old
    (rec(""), 0, 0, Step.TAKE),  # released by its last holder
    (rec(OTHER), 0, 14.9, Step.WAIT),  # another's, changed 14.9 s ago by our clock
    (rec(OTHER), 0, 15, Step.TAKE),  # another's, unchanged for its whole duration
    (rec(OTHER, duration=60), 0, 30, Step.WAIT),  # the holder's duration counts, not ours
])
def test_next_step(record: Record | None, changed_at: float, now: float, step: Step) -> None:
    assert next_step(Observation(record, changed_at), ME, now) is step


def test_expiry_is_timed_from_when_this_candidate_saw_the_record_change() -> None:
    first = observe(None, rec(OTHER, "1"), now=100)
    # Re-reading the same record (no renewal) keeps the time it was first seen...
    assert observe(first, rec(OTHER, "1"), now=110).changed_at == 100
    # ...a renewal (new resourceVersion) restarts the count, whatever renewTime says.
    renewed = observe(first, rec(OTHER, "2"), now=112)
    assert renewed.changed_at == 112
    assert next_step(renewed, ME, now=126) is Step.WAIT
    assert next_step(renewed, ME, now=127) is Step.TAKE


@pytest.mark.parametrize(("since", "leading"), [(0, True), (9.9, True), (10, False), (30, False)])
def test_a_leader_stops_when_it_has_not_renewed_within_the_deadline(since: float, leading: bool) -> None:
    assert still_leading(last_renewed=100, now=100 + since, timing=Timing()) is leading


@pytest.mark.parametrize("timing", [(15, 15, 2), (15, 10, 10), (10, 15, 2), (15, 10, 0)])
def test_timings_that_could_let_two_lead_are_refused(timing: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        Timing(*timing)


# -- on the API server ---------------------------------------------------------------------------------------

class Clock:
    """A monotonic clock the test moves (`tick`: how far each reading moves it)."""

    def __init__(self) -> None:
        self.now, self.tick = 1000.0, 0.0

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


@pytest.fixture(scope="module")
def lease_ns(cluster: ClusterUnderTest) -> Iterator[str]:
    yield from temporary_namespace(cluster)


def candidates(cluster: ClusterUnderTest, ns: str, name: str) -> tuple[LeaseLock, LeaseLock, Clock, Clock]:
    kube = Kube(cluster.kubeconfig)
    timing = Timing(lease_duration=15, renew_deadline=10, retry_period=2)
    a_clock, b_clock = Clock(), Clock()
    return (LeaseLock(kube, ns, name, "a_1", timing, clock=a_clock),
            LeaseLock(kube, ns, name, "b_1", timing, clock=b_clock), a_clock, b_clock)


def lease(cluster: ClusterUnderTest, ns: str, name: str) -> dict[str, str | int]:
    spec: dict[str, str | int] = cluster.kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}")["spec"]
    return spec


@pytest.mark.controlplane
def test_one_holds_the_lease_the_other_takes_it_only_once_it_expires(cluster: ClusterUnderTest,
                                                                      lease_ns: str) -> None:
    a, b, _a_clock, b_clock = candidates(cluster, lease_ns, "expiry")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    b_clock.now += 14
    assert not b.try_acquire_or_renew()  # 14 s by b's clock since it saw the record change
    assert a.try_acquire_or_renew()  # a renews: the record changes, b starts counting again
    b_clock.now += 14
    assert not b.try_acquire_or_renew()
    b_clock.now += 15
    assert b.try_acquire_or_renew()  # a stopped renewing 15 s ago by b's clock: b takes over
    held = lease(cluster, lease_ns, "expiry")
    assert held["holderIdentity"] == "b_1" and held["leaseTransitions"] == 1
    assert not a.try_acquire_or_renew()  # a's renewal of a record that moved on loses (409)
    assert lease(cluster, lease_ns, "expiry")["holderIdentity"] == "b_1"


@pytest.mark.controlplane
def test_racing_candidates_never_both_win(cluster: ClusterUnderTest, lease_ns: str) -> None:
    kube = Kube(cluster.kubeconfig)
    timing = Timing()
    locks = [LeaseLock(kube, lease_ns, "race", f"c{i}_1", timing) for i in range(6)]
    barrier = threading.Barrier(len(locks))
    won: list[str] = []

    def run(lock: LeaseLock) -> None:
        barrier.wait()
        if lock.try_acquire_or_renew():
            won.append(lock.identity)

    threads = [threading.Thread(target=run, args=(lock,)) for lock in locks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 1, won
    assert lease(cluster, lease_ns, "race")["holderIdentity"] == won[0]


@pytest.mark.controlplane
def test_a_released_lease_is_taken_at_once_and_a_stalled_leader_gives_up(cluster: ClusterUnderTest,
                                                                         lease_ns: str) -> None:
    a, b, a_clock, _b_clock = candidates(cluster, lease_ns, "release")
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    a.release()
    assert lease(cluster, lease_ns, "release").get("holderIdentity") is None
    assert b.try_acquire_or_renew()  # no waiting for the duration
    # a, no longer the holder, cannot renew; past its renew deadline, keep() calls on_lost.
    lost = threading.Event()
    stop = threading.Event()
    a.timing = Timing(lease_duration=3, renew_deadline=0.5, retry_period=0.1)
    a_clock.tick = 0.1
    keeper = threading.Thread(target=a.keep, args=(stop, lost.set))
    keeper.start()
    try:
        assert lost.wait(30)
    finally:
        stop.set()
        keeper.join(timeout=30)
