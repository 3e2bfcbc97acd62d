"""The circuit breaker's gradual reset: the admitted rate ramps up linearly, then ends."""

from __future__ import annotations

from caxton_node.ramp import AdmissionRamp


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def admitted_in_one_second(ramp: AdmissionRamp, clock: Clock, tries: int = 20_000) -> int:
    """Offers `tries` messages spread over one second; counts those admitted."""
    count = 0
    for _ in range(tries):
        clock.now += 1.0 / tries
        count += ramp.admit()
    return count


def test_no_ramp_admits_everything() -> None:
    ramp = AdmissionRamp(clock=Clock())
    assert ramp.rate() is None and ramp.fraction() == 1.0
    assert all(ramp.admit() for _ in range(1000))


def test_rate_rises_linearly_and_the_ramp_ends() -> None:
    clock = Clock()
    ramp = AdmissionRamp(clock=clock)
    ramp.begin(100.0, start_rate=10.0, full_rate=1010.0)
    assert ramp.rate() == 10.0 and ramp.fraction() == 0.0
    first = admitted_in_one_second(ramp, clock)
    clock.now = 100.0 + 50.0
    assert ramp.rate() == 510.0 and ramp.fraction() == 0.5
    burst = admitted_in_one_second(ramp, clock)  # includes up to one second's saved tokens
    middle = admitted_in_one_second(ramp, clock)
    assert 10 <= first <= 30, first  # about the start rate (plus the first second's tokens)
    assert burst <= 2 * 520, burst
    assert 500 <= middle <= 530, middle  # the rate of that moment, not the full rate
    clock.now = 100.0 + 100.0
    assert ramp.rate() is None and ramp.fraction() == 1.0
    assert admitted_in_one_second(ramp, clock, tries=5000) == 5000


def test_cancel_ends_the_ramp() -> None:
    clock = Clock()
    ramp = AdmissionRamp(clock=clock)
    ramp.begin(60.0)
    ramp.cancel()
    assert ramp.rate() is None
