"""How much one agent may write to the node's log: a cap per message and a rate per agent.

An agent's `log` calls go to the node's own log, which the operator ships and
disks hold; without a bound one chatty message can write megabytes. Lines over
either limit are dropped and counted; the node reports the count at most once a
second per agent, so the report is bounded too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from caxton_node.ratelimit import TokenBucket

BURST_SECONDS = 4.0  # an agent that was quiet may write this many seconds' worth at once


class LogLimiter:
    """One agent's log budget. Not locked: an agent runs on one thread at a time."""

    def __init__(self, *, per_second: float, per_message: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._bucket = TokenBucket(per_second, max(per_second * BURST_SECONDS, per_message), clock=clock)
        self._clock = clock
        self._per_message = per_message
        self._message: object = None
        self._lines = 0
        self._unreported = 0
        self._reported_at = float("-inf")
        self.dropped = 0

    def allow(self, message: object) -> bool:
        """May the agent log one more line while handling `message` (its identity marks a new one)?"""
        if message is not self._message:
            self._message = message
            self._lines = 0
        self._lines += 1
        if self._lines <= self._per_message and self._bucket.take():
            return True
        self.dropped += 1
        self._unreported += 1
        return False

    def report(self) -> int:
        """Lines dropped since the last report, if a second has passed since it; else 0."""
        now = self._clock()
        if not self._unreported or now - self._reported_at < 1.0:
            return 0
        count, self._unreported, self._reported_at = self._unreported, 0, now
        return count
