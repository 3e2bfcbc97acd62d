"""Daemon processes tracked by pid files, safe against pid reuse.

A pid file holds the pid and the process start time (from /proc), so a stale
file never makes us signal an unrelated process that reused the pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces or parentheses; fields resume after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def write_pidfile(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid} {_start_ticks(pid) or 0}\n")


def read_pidfile(path: Path) -> int | None:
    """The pid recorded in `path` if that very process is still alive."""
    try:
        pid_text, ticks_text = path.read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_text)
    ticks = _start_ticks(pid)
    if ticks is None or ticks != int(ticks_text):
        return None
    return pid


def start_daemon(
    argv: list[str], *, log_path: Path, pid_path: Path, env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Starts `argv` in its own session, detached from ours, logging to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, cwd=cwd,
        )
    write_pidfile(pid_path, proc.pid)
    return proc.pid


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Reap it if it is our child; otherwise just see whether it exists.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if _start_ticks(pid) is None:
            return True
        time.sleep(0.05)
    return _start_ticks(pid) is None


def stop_group(pid: int, *, grace: float) -> None:
    """SIGTERM the process group led by `pid`, SIGKILL what is left after `grace`."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        if wait_gone(pid, wait):
            return


def stop_pidfile(path: Path, *, grace: float = 10.0) -> bool:
    """Stops the daemon recorded in `path`; True if one was running."""
    pid = read_pidfile(path)
    path.unlink(missing_ok=True)
    if pid is None:
        return False
    stop_group(pid, grace=grace)
    return True
