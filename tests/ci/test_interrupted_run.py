"""SIGTERM (what a CI timeout sends) or SIGINT to a test run stops everything the run started: the local
control plane, the process kubelet and its pods, node processes and iptables rules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import addresses
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else fields[19]


def descendants(root: int) -> dict[int, str]:
    """Every process below `root` (daemons in their own sessions included), with its start time."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry.name))
    found: dict[int, str] = {}
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        ticks = _start_ticks(pid)
        if ticks is not None:
            found[pid] = ticks
        pending += children.get(pid, [])
    return found


def alive(processes: dict[int, str]) -> list[int]:
    return [pid for pid, ticks in processes.items() if _start_ticks(pid) == ticks]


def iptables_rules() -> str:
    return subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_tears_down_everything_the_run_started(sig: signal.Signals, tmp_path: Path,
                                                        partition: object) -> None:
    # (`partition` only makes sure iptables works here; the run below makes its own chain.)
    held = tmp_path / "held.json"
    slot = int(addresses.test_network().split(".")[1]) + 100  # its own addresses, apart from ours
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(CAXTON_TEST_SLOT=str(slot), CAXTON_HELD_FILE=str(held))
    with open(tmp_path / "run.log", "wb") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--basetemp", str(tmp_path / "run"),
             "tests/ci/held_session.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    processes: dict[int, str] = {}
    chain = ""
    try:
        def holding() -> bool:
            if run.poll() is not None:
                raise AssertionError(f"the run ended early:\n{(tmp_path / 'run.log').read_text()[-3000:]}")
            return held.exists()

        wait_for(holding, timeout=900, what="the run to hold a control plane, a pod, a node and a chain",
                 interval=1)
        info = json.loads(held.read_text())
        chain = info["chain"]
        processes = descendants(run.pid)
        commands = " ".join(Path(f"/proc/{pid}/cmdline").read_text(errors="replace") for pid in alive(processes))
        for part in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "coredns",
                     "caxton_local.kubelet", "sleep\x003600", "server\x00start"):
            assert part in commands, f"{part} is not running under the run"
        assert info["nodePid"] in processes
        assert f"-N {chain}" in iptables_rules()

        run.send_signal(sig)
        assert run.wait(timeout=300) == pytest.ExitCode.INTERRUPTED
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        leftovers = alive(processes)
        rules_left = chain and chain in iptables_rules()
        for pid in leftovers:  # clean up what a broken teardown left, then fail below
            os.kill(pid, signal.SIGKILL)
        if rules_left:
            subprocess.run(["iptables", "-w", "-D", "INPUT", "-j", chain], capture_output=True)
            subprocess.run(["iptables", "-w", "-F", chain], capture_output=True)
            subprocess.run(["iptables", "-w", "-X", chain], capture_output=True)
    output = (tmp_path / "run.log").read_text()
    assert f"interrupted by signal {int(sig)}" in output
    assert leftovers == [], f"still running after SIGTERM: {leftovers}"
    assert not rules_left, f"iptables chain {chain} left behind"
    assert not Path(info["stateDir"]).exists(), "the control plane's state was not purged"
