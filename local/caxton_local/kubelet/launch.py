"""Runs inside a container's fresh mount and UTS namespaces, then becomes the container.

The kubelet starts `unshare --mount --uts --propagation private python -m
caxton_local.kubelet.launch SPEC.json`; this bind-mounts each volume at its
mountPath (visible to this container only), sets the hostname to the pod's
name, changes directory and execs the container's command.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys
from pathlib import Path

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, flags: int) -> None:
    if _libc.mount(source.encode(), target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def bind_mount(source: Path, target: Path, read_only: bool) -> None:
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.touch()
    _mount(str(source), str(target), MS_BIND | MS_REC)
    if read_only:
        _mount(str(source), str(target), MS_BIND | MS_REMOUNT | MS_RDONLY)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        for source, target, read_only in sorted(spec["mounts"], key=lambda m: len(m[1])):
            bind_mount(Path(source), Path(target), read_only)
        if spec.get("hostname"):
            socket.sethostname(spec["hostname"])
        os.chdir(spec.get("workingDir") or "/")
        os.execve(spec["argv"][0], spec["argv"], spec["env"])
    except OSError as err:
        # Exit code 128 + errno like a runtime's "failed to create container task".
        print(f"process kubelet: cannot start container: {err}", file=sys.stderr, flush=True)
        sys.exit(128)


if __name__ == "__main__":
    main()
