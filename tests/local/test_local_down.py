"""`caxton local up|status|down` on an instance of its own: `up` is idempotent and repairs only
what is down, `status` exits 3 when anything is down, `down` leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from caxton_local.layout import Layout, Ports, Settings, free_port
from caxton_local.procs import read_pidfile

from tests.support import addresses
from tests.support.waiting import wait_for


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(bool(os.environ.get("KUBECONFIG")), reason="starts a second local control plane")
def test_up_is_idempotent_status_tells_and_down_stops_everything(tmp_path: Path) -> None:
    state = tmp_path / "second"
    layout = Layout(state)
    net = addresses.test_network()  # apart from the session's control plane (.1.N) and other runs
    layout.save_settings(Settings(ports=Ports(apiserver=free_port()), nodes=1, pod_ip_first=f"{net}.3.2",
                                  pod_ip_last=f"{net}.3.254", dns_ip=f"{net}.53.3"))
    cli = [sys.executable, "-m", "caxton_cli", "local", "--state-dir", str(state)]
    try:
        subprocess.run([*cli, "up"], check=True, capture_output=True, timeout=300)
        kubectl = [str(layout.bin / "kubectl"), f"--kubeconfig={layout.kubeconfig()}"]
        subprocess.run([*kubectl, "run", "idle", "--image=busybox", "--command", "--", "sleep", "3600"],
                       check=True, capture_output=True, timeout=60)
        pidfiles = wait_for(lambda: list((layout.kubelet / "pods").glob("*/main.pid")) or
                            list((layout.kubelet / "pods").glob("*/idle.pid")),
                            timeout=60, what="the pod's process")
        pod_pid = read_pidfile(pidfiles[0])
        assert pod_pid is not None
        assert _processes_mentioning(str(state))

        running = status(cli)
        assert running.returncode == 0, running.stdout + running.stderr
        pids = component_pids(running)
        assert len(pids) == 6 and all(pids.values())
        # `up` again changes nothing that runs: same processes, the pod untouched.
        again = subprocess.run([*cli, "up"], capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert "starting" not in again.stderr
        assert component_pids(status(cli)) == pids
        assert read_pidfile(pidfiles[0]) == pod_pid
        # One part down: status says which and exits 3; `up` starts only that part.
        scheduler = pids["kube-scheduler"]
        assert scheduler is not None
        os.kill(scheduler, signal.SIGKILL)
        wait_for(lambda: status(cli).returncode == 3, timeout=30, what="status to notice the scheduler is gone")
        broken = status(cli)
        assert {c["name"]: c["healthy"] for c in json.loads(broken.stdout)["components"]}["kube-scheduler"] is False
        assert "caxton local up" in broken.stderr
        repaired = subprocess.run([*cli, "up"], capture_output=True, text=True, timeout=300)
        assert repaired.returncode == 0, repaired.stderr
        assert [line for line in repaired.stderr.splitlines() if line.startswith("starting")] == [
            "starting kube-scheduler"]
        after = component_pids(status(cli))
        assert {k: v for k, v in after.items() if k != "kube-scheduler"} == {
            k: v for k, v in pids.items() if k != "kube-scheduler"}
        assert after["kube-scheduler"] not in (None, pids["kube-scheduler"])
    finally:
        subprocess.run([*cli, "down"], check=True, capture_output=True, timeout=120)
    assert _processes_mentioning(str(state)) == []
    assert not Path(f"/proc/{pod_pid}").exists()
    stopped = status(cli)
    assert stopped.returncode == 3
    assert all(c["pid"] is None for c in json.loads(stopped.stdout)["components"])


def status(cli: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli, "status", "-o", "json"], capture_output=True, text=True, timeout=60)


def component_pids(result: subprocess.CompletedProcess[str]) -> dict[str, int | None]:
    return {c["name"]: c["pid"] for c in json.loads(result.stdout)["components"]}
