"""The token bucket and the agent log limiter, on a fake clock (pure logic, table-driven)."""

from __future__ import annotations

import pytest
from caxton_node.agents.log_limit import LogLimiter
from caxton_node.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("rate", "burst", "steps", "expected"), [
    # steps: (seconds to advance, takes) -> how many of the takes were allowed
    (1.0, 3, [(0, 5)], [3]),
    (1.0, 3, [(0, 3), (1, 2)], [3, 1]),
    (10.0, 5, [(0, 5), (0.5, 10)], [5, 5]),
    (2.0, 2, [(0, 2), (100, 5)], [2, 2]),  # refills no further than the burst
])
def test_token_bucket(rate: float, burst: float, steps: list[tuple[float, int]], expected: list[int]) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock=clock)
    allowed = []
    for advance, takes in steps:
        clock.now += advance
        allowed.append(sum(bucket.take() for _ in range(takes)))
    assert allowed == expected


@pytest.mark.parametrize(("per_second", "per_message", "messages", "expected"), [
    # messages: (seconds since the previous, lines logged) -> lines allowed per message
    (50, 16, [(0, 100)], [16]),                 # the cap per message
    (50, 16, [(0, 10), (0, 10)], [10, 10]),     # a new message has a new cap
    (1, 16, [(0, 16), (0, 16)], [16, 0]),       # the burst (4 s worth, at least one message) is spent
    (1, 16, [(0, 16), (5, 16)], [16, 5]),       # then one line a second
])
def test_log_limiter(per_second: float, per_message: int, messages: list[tuple[float, int]],
                     expected: list[int]) -> None:
    clock = FakeClock()
    limiter = LogLimiter(per_second=per_second, per_message=per_message, clock=clock)
    allowed = []
    for advance, lines in messages:
        clock.now += advance
        message = object()
        allowed.append(sum(limiter.allow(message) for _ in range(lines)))
    assert allowed == expected
    assert limiter.dropped == sum(n for _, n in messages) - sum(expected)


def test_log_limiter_reports_drops_at_most_once_a_second() -> None:
    clock = FakeClock()
    limiter = LogLimiter(per_second=1, per_message=1, clock=clock)
    message = object()
    assert [limiter.allow(message) for _ in range(4)] == [True, False, False, False]
    assert limiter.report() == 3
    assert not limiter.allow(message)
    assert limiter.report() == 0  # within the second: kept for the next report
    clock.now += 1
    assert limiter.report() == 1
    assert limiter.report() == 0
