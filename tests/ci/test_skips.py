"""CI cannot lose a test to a silent skip: any skip tests/skips.py does not allow fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import skips
from tests.support import addresses

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("reason", "env", "allowed"), [
    ("iptables is not installed (apt-get install iptables)", {}, False),
    ("iptables is not installed (apt-get install iptables)", {"KUBECONFIG": "/k"}, False),
    ("needs the process kubelet of the local control plane (KUBECONFIG points elsewhere)", {}, False),
    ("needs the process kubelet of the local control plane (KUBECONFIG points elsewhere)",
     {"KUBECONFIG": "/k"}, True),
    ("promtool not installed", {"CAXTON_ALLOW_SKIPS": "1"}, True),
])
def test_only_foreign_cluster_skips_are_allowed(reason: str, env: dict[str, str], allowed: bool) -> None:
    assert (skips.refusal(reason, env) == "") is allowed


def run_without_iptables(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest on a real test that needs iptables, on a PATH where iptables does not exist."""
    path = [str(Path(sys.executable).parent)] + [
        d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "iptables").exists()]
    slot = int(addresses.test_network().split(".")[1]) + 100
    environ = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "CAXTON_ALLOW_SKIPS")}
    environ.update(PATH=os.pathsep.join(path), CI="true", CAXTON_TEST_SLOT=str(slot), **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args,
         "tests/node/cluster/test_verify.py"],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300,
    )


def test_a_run_without_iptables_fails_instead_of_skipping() -> None:
    result = run_without_iptables()
    assert result.returncode == 1, result.stdout
    assert "skip not allowed: 'iptables is not installed" in result.stdout
    summary = result.stdout.splitlines()[-1]
    assert "1 error" in summary and "skipped" not in summary  # the skip in the fixture became an error
    # The opt-out, for a developer's machine, turns it back into a skip.
    allowed = run_without_iptables(CAXTON_ALLOW_SKIPS="1")
    assert allowed.returncode == 0, allowed.stdout
    assert "1 skipped" in allowed.stdout.splitlines()[-1]
