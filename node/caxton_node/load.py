"""A node's load, defined once (docs/rebalance.md): how many agents it runs, the messages
they handled per second recently, and its memory against its limit, with each agent's own
recent rate, so the operator's rebalance planner can weigh agents by their traffic.

Rates are measured, not sampled on a timer: each look appends (time, handled per agent,
CPU seconds) and compares with the oldest look kept (the last one before WINDOW), so
whoever asks every few seconds gets a rate over about the last half minute, without a
thread of its own; the node looks once when it starts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from caxton_node.system import memory_limit_bytes, rss_bytes

WINDOW = 30.0  # seconds of history a rate is measured over
MIN_SPAN = 1.0  # a rate needs two looks at least this far apart; before that it is unknown (None)


@dataclass(frozen=True)
class _Look:
    at: float
    cpu: float
    handled: dict[str, int]


class LoadMeter:
    def __init__(self, handled: Callable[[], dict[str, int]], *, clock: Callable[[], float] = time.monotonic,
                 cpu: Callable[[], float] = time.process_time) -> None:
        self._handled = handled  # agent id -> messages it handled since it started here
        self._clock = clock
        self._cpu = cpu
        self._looks: deque[_Look] = deque()
        self._lock = threading.Lock()

    def measure(self) -> dict[str, Any]:
        """The load as of now; rates are None until two looks MIN_SPAN apart exist."""
        now = _Look(self._clock(), self._cpu(), dict(self._handled()))
        with self._lock:
            # Keep one look from before the window: an idle spell between looks still yields a rate.
            while len(self._looks) > 1 and now.at - self._looks[1].at > WINDOW:
                self._looks.popleft()
            if not self._looks or now.at - self._looks[-1].at >= MIN_SPAN / 2:
                self._looks.append(now)
            oldest = self._looks[0]
        span = now.at - oldest.at
        rates: dict[str, float | None] = {}
        for agent, count in now.handled.items():
            before = oldest.handled.get(agent)
            # An agent that arrived after the oldest look is measured from 0 at its arrival: a lower bound.
            rates[agent] = round(max(count - (before or 0), 0) / span, 2) if span >= MIN_SPAN else None
        limit, source = memory_limit_bytes()
        rss = rss_bytes()
        known = [r for r in rates.values() if r is not None]
        return {
            "agents": len(now.handled),
            "messageRate": round(sum(known), 2) if span >= MIN_SPAN else None,
            "windowSeconds": round(span, 1),
            "cpuPercent": round(100.0 * (now.cpu - oldest.cpu) / span, 1) if span >= MIN_SPAN else None,
            "memoryBytes": rss,
            "memoryLimitBytes": limit,
            "memoryLimitSource": source,
            "memoryFraction": round(rss / limit, 4) if limit else None,
            "agentRates": rates,
        }
