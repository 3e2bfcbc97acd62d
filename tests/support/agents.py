"""Builds the example agents from source (examples/agents/build.sh) for tests and benchmarks."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

AGENTS_DIR = Path(__file__).resolve().parents[2] / "examples" / "agents"


@functools.cache
def build_example_agents() -> dict[str, bytes]:
    """Every example agent by name (file stem), compiled from its WAT or C source."""
    subprocess.run(
        ["bash", str(AGENTS_DIR / "build.sh")], check=True, capture_output=True, timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
    )
    return {path.stem: path.read_bytes() for path in (AGENTS_DIR / "build").glob("*.wasm")}
