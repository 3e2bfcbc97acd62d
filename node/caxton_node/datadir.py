"""One node per data directory: an exclusive flock on `<data_dir>/caxton.lock`.

Two nodes on one directory would both replay the same queued messages and write the
same SQLite file, so the second refuses to start and names the first (its pid, from
the lock file). The kernel drops the lock when the holder exits, even on kill -9, so
a stale file never blocks a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

from caxton_node.config import StartupError

LOCK_FILE = "caxton.lock"


class DataDirLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def check_data_dir(path: Path) -> None:
    """Refuses a data_dir that exists but is not a directory (before anything is created)."""
    if path.exists() and not path.is_dir():
        raise StartupError(f"node.data_dir {path} exists and is not a directory")


def lock_data_dir(path: Path) -> DataDirLock:
    """Creates `path` if needed and takes its lock; StartupError if another process holds it."""
    check_data_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise StartupError(f"cannot use node.data_dir {path}: {err.strerror or err}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = b""
        with contextlib.suppress(OSError):
            holder = os.pread(fd, 256, 0)
        os.close(fd)
        who = holder.decode(errors="replace").strip() or "unknown pid"
        raise StartupError(f"node.data_dir {path} is in use by another node ({who}); stop it, "
                           "or give this node a data directory of its own") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return DataDirLock(path, fd)
