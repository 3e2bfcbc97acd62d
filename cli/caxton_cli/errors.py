"""The one exception every command raises for a failure the user should read."""

from __future__ import annotations


class CommandError(RuntimeError):
    """A failure to report as one readable line; `exit_code` is what the process returns:
    1 refused, 2 bad input or unreachable, 3 a problem found or timed out, 4 not found."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
