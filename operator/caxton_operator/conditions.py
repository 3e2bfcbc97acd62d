"""Status conditions the Kubernetes way: one entry per type, with reason and message,
and a lastTransitionTime that moves only when the status does."""

from __future__ import annotations

import time
from typing import Any

Condition = dict[str, Any]


def now_iso(when: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if when is None else when))


class Conditions:
    """Builds a status' conditions from the previous ones; `changed` lists the transitions
    (a condition seen for the first time is a start, not a transition)."""

    def __init__(self, previous: list[Condition] | None, *, now: float | None = None) -> None:
        self._now = now
        self._previous = {c["type"]: c for c in previous or []}
        self._current: dict[str, Condition] = {}
        self.changed: list[Condition] = []

    def set(self, kind: str, ok: bool, reason: str, message: str) -> None:
        status = "True" if ok else "False"
        before = self._previous.get(kind, {})
        moved = before.get("status") != status
        self._current[kind] = {
            "type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": before.get("lastTransitionTime") if not moved else now_iso(self._now),
        }
        if before and (moved or before.get("reason") != reason):
            self.changed.append(self._current[kind])

    def as_list(self) -> list[Condition]:
        return list(self._current.values())
