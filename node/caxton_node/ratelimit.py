"""A token bucket: what keeps an agent's log lines and dead letters to a bounded rate.

Pure and clock-injected, so the limits are unit-tested without sleeping; the
callers hold their own locks (each bucket belongs to one agent).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Allows `burst` events at once and `rate` events per second after that."""

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()

    def take(self, n: float = 1.0) -> bool:
        """Takes `n` tokens if there are that many; False (and nothing taken) otherwise."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False
