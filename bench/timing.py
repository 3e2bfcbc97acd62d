"""Timing a condition: how long until it holds, polled, bounded."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(check: Callable[[], Any], timeout: float, *, poll: float = 0.05, what: str = "condition") -> float:
    """Seconds until `check()` is truthy; TimeoutError after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(poll)
    raise TimeoutError(f"{what}: not met within {timeout:.0f}s")
