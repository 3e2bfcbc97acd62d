"""The load both benchmarks drive: echo round trips from a client mailbox named `bench`."""

from __future__ import annotations

import time

from caxton_node.messages import Message
from caxton_node.routing.router import Router


def round_trips(router: Router, count: int, *, timeout: float = 30) -> list[float]:
    """One message at a time, waiting for each reply: sorted latencies in seconds.
    `timeout` only tells a lost reply from a slow one: a loaded machine stalls for seconds."""
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        router.route(Message("request", "bench", "echo", "latency", content=i))
        if not router.take_mailbox("bench", 1, timeout=timeout):
            raise RuntimeError(f"no reply to message {i} within {timeout:.0f}s ({i} round trips done)")
        latencies.append(time.perf_counter() - started)
    return sorted(latencies)


def burst(router: Router, count: int, *, timeout: float = 300) -> float:
    """`count` messages at once over 16 conversations; replies per second until the last arrives."""
    batch = [Message("request", "bench", "echo", f"c{i % 16}", content=i) for i in range(count)]
    started = time.perf_counter()
    for msg in batch:
        router.route(msg)
    got = 0
    while got < count:
        got += len(router.take_mailbox("bench", 100_000, timeout=0.5))
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"only {got}/{count} replies within {timeout:.0f}s")
    return count / (time.perf_counter() - started)


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]
