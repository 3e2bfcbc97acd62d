"""The cluster event log behind `caxton cluster watch`: recent INFO+ lines of the
gossip and peer loggers (membership changes, partition detected/healed, replay)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from typing import Any

WATCHED_LOGGERS = ("caxton.gossip", "caxton.peers")


class EventLog(logging.Handler):
    def __init__(self, capacity: int = 1000) -> None:
        super().__init__(level=logging.INFO)
        self._events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock2:
            self._events.append({"seq": next(self._seq), "ts": time.time(), "level": record.levelname,
                                 "message": record.getMessage()})

    def since(self, seq: int) -> list[dict[str, Any]]:
        with self._lock2:
            return [e for e in self._events if e["seq"] > seq]

    def attach(self) -> None:
        for name in WATCHED_LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(self)
            logger.setLevel(min(logger.level or logging.INFO, logging.INFO))

    def detach(self) -> None:
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).removeHandler(self)
