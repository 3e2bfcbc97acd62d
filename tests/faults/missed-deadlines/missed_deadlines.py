"""The real `caxton server`, built wrong: every message is handled with a deadline of zero
epoch ticks, so every agent traps with "deadline exceeded" (counted as a crash and a dead
letter, as a release with a broken timer would)."""

from __future__ import annotations

import sys
from typing import Any

from caxton_node.agents import wasm

_handle = wasm.AgentInstance.handle


def _late_handle(self: wasm.AgentInstance, message: bytes) -> int:
    self._deadline_ticks = 0
    return _handle(self, message)


wasm.AgentInstance.handle = _late_handle  # type: ignore[method-assign]

if __name__ == "__main__":
    from caxton_cli.main import run

    args: Any = sys.argv[1:]
    sys.exit(run(args, "caxton"))
