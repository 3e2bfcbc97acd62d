"""Builds the podnet LD_PRELOAD shim (see native/podnet.c) once per source version."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from caxton_local.toolchain import cache_root

SOURCE = Path(__file__).resolve().parents[1] / "native" / "podnet.c"


class PodNetError(RuntimeError):
    pass


def shim_path() -> Path:
    """Compiles the shim if needed and returns the shared object's path."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    target = cache_root() / "native" / f"podnet-{digest}.so"
    if target.exists():
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise PodNetError("no C compiler (cc/gcc) to build the podnet shim: apt-get install gcc")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    result = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(partial), str(SOURCE), "-ldl"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise PodNetError(f"building the podnet shim failed:\n{result.stderr}")
    partial.rename(target)
    return target
