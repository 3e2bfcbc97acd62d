"""Which loopback addresses this test run may use.

Several test runs can share one machine (developers in parallel, CI beside a
developer): each picks its own `CAXTON_TEST_SLOT`, and every address a run hands
out (node processes, local control-plane pods, cluster DNS) lies in `127.<slot>.*`.
"""

from __future__ import annotations

import os


def test_network() -> str:
    """The first two octets of this run's loopback addresses: `127.<CAXTON_TEST_SLOT>` (default 0)."""
    slot = int(os.environ.get("CAXTON_TEST_SLOT", "0"))
    if not 0 <= slot <= 250:
        raise ValueError(f"CAXTON_TEST_SLOT must be 0..250, not {slot}")
    return f"127.{slot}"
