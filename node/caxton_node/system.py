"""What /proc says about a process and the host (RSS, available memory)."""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of `pid` (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_limit_bytes() -> tuple[int, str]:
    """The memory this process may use and where that figure comes from: its cgroup's limit
    (a pod's resources.limits.memory) when it has one, else the host's total memory."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max", or v1's "unlimited" page-rounded 2**63
            return int(text), "cgroup"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024, "host"
    except OSError:
        pass
    return 0, "unknown"


def return_free_memory() -> bool:
    """Asks the C allocator to give free heap pages back to the system (glibc's malloc_trim)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return bool(libc is not None and libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False
