"""Bad input is refused before any request, as one line and exit 2; usage errors are
argparse's exit 2 with the usage line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(sys.executable).parent


@pytest.mark.parametrize("front_door", ["caxton", "kubectl-caxton"])
def test_a_missing_module_file_is_named(front_door: str, tmp_path: Path) -> None:
    # --kubeconfig / --api point nowhere: the file is checked first.
    result = subprocess.run([str(SCRIPTS / front_door), "agents", "deploy", str(tmp_path / "nope.wasm"), "--id", "x"],
                            capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(tmp_path / "none"),
                                 "CAXTON_API": "http://127.0.0.1:9"})
    assert (result.returncode, result.stderr) == (2, f"error: cannot read {tmp_path / 'nope.wasm'}: "
                                                     "No such file or directory\n")


@pytest.mark.parametrize("argv", [["cluster"], ["cluster", "members", "-o", "xml"], ["agents", "suspend", "--priority",
                                                                                      "urgent"]])
def test_usage_errors_exit_2_with_the_usage(argv: list[str]) -> None:
    result = subprocess.run([str(SCRIPTS / "kubectl-caxton"), *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: kubectl caxton") and "error:" in result.stderr
