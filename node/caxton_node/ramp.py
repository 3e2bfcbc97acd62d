"""The gradual reset of the circuit breaker: after an agent storm, admit a rising rate of
new messages instead of everything at once (`circuit-breaker reset --gradual --duration`).

The admitted rate grows linearly from `start_rate` per second to `full_rate` over the
duration, then the ramp ends and admission is unlimited. A message over the current
rate is refused with 429 (retry later), so senders back off and nothing is dropped.
Pure and clock-injected (tests/node/test_ramp.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

START_RATE = 10.0  # messages per second at the start of a ramp
FULL_RATE = 10_000.0  # per second at its end, after which admission is unlimited


class AdmissionRamp:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._start = 0.0
        self._duration = 0.0
        self.start_rate, self.full_rate = START_RATE, FULL_RATE
        self._tokens = 0.0
        self._last = 0.0

    def begin(self, duration: float, *, start_rate: float = START_RATE, full_rate: float = FULL_RATE) -> None:
        with self._lock:
            self._start = self._last = self._clock()
            self._duration = duration
            self.start_rate, self.full_rate = start_rate, max(full_rate, start_rate)
            self._tokens = start_rate  # one second's worth at once

    def cancel(self) -> None:
        with self._lock:
            self._duration = 0.0

    def rate(self) -> float | None:
        """Messages per second admitted now; None when no ramp limits admission."""
        with self._lock:
            return self._rate(self._clock())

    def _rate(self, now: float) -> float | None:
        if self._duration <= 0:
            return None
        elapsed = now - self._start
        if elapsed >= self._duration:
            self._duration = 0.0
            return None
        return self.start_rate + (self.full_rate - self.start_rate) * elapsed / self._duration

    def fraction(self) -> float:
        """How far the ramp is (0 at its start, 1 when admission is unlimited)."""
        with self._lock:
            now = self._clock()
            if self._rate(now) is None:
                return 1.0
            return (now - self._start) / self._duration

    def admit(self) -> bool:
        """True if one more message may be accepted now."""
        with self._lock:
            now = self._clock()
            rate = self._rate(now)
            if rate is None:
                return True
            self._tokens = min(rate, self._tokens + (now - self._last) * rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False
