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
# Fields a log call may attach (`extra=`) that events carry as data: membership changes.
STRUCTURED_FIELDS = ("member", "previous", "state")


class EventLog(logging.Handler):
    def __init__(self, capacity: int = 1000) -> None:
        super().__init__(level=logging.INFO)
        self._events: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock2:
            event = {"seq": next(self._seq), "ts": time.time(), "level": record.levelname,
                     "message": record.getMessage()}
            event.update({key: getattr(record, key) for key in STRUCTURED_FIELDS if hasattr(record, key)})
            self._events.append(event)

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
