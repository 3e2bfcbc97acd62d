"""What the API server said no with, and the shape of the objects it sends."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


class KubeError(RuntimeError):
    """An HTTP error answer of the API server: its status code, reason and message."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class KubeUnreachable(ConnectionError):
    """No answer from the API server at all (refused, reset, timed out, TLS failed)."""
