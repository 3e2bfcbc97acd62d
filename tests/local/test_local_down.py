"""`caxton local down` leaves no process behind, pods included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from caxton_local.layout import Layout, Ports, Settings, free_port
from caxton_local.procs import read_pidfile

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
def test_down_stops_control_plane_and_pods(tmp_path: Path) -> None:
    state = tmp_path / "second"
    layout = Layout(state)
    layout.save_settings(Settings(ports=Ports(apiserver=free_port()), nodes=1))
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
    finally:
        subprocess.run([*cli, "down"], check=True, capture_output=True, timeout=120)
    assert _processes_mentioning(str(state)) == []
    assert not Path(f"/proc/{pod_pid}").exists()
