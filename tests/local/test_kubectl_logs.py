"""`kubectl logs` (the pinned kubectl, unchanged) against pods of the process kubelet:
the log, --tail, -f following new lines and ending with the container, and --previous
after a crash. The API server reaches the kubelet's container-logs endpoint over TLS."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.local.manifests import pod
from tests.support.cluster import ClusterUnderTest, pod_ready, temporary_namespace
from tests.support.waiting import wait_for

# Each run names itself with a nonce, then ticks every 0.2 s.
TALKER = 'echo "started $(cat /proc/sys/kernel/random/uuid)"; i=0; ' \
         'while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'


@pytest.fixture(scope="module")
def talker(cluster: ClusterUnderTest) -> Iterator[tuple[ClusterUnderTest, str]]:
    if not cluster.has_process_kubelet:
        pytest.skip("needs the process kubelet of the local control plane (it kills the container's process)")
    for ns in temporary_namespace(cluster):
        cluster.apply(pod("talker", image="busybox", command=["sh", "-c", TALKER]), ns)
        path = f"/api/v1/namespaces/{ns}/pods/talker"
        wait_for(lambda: pod_ready(cluster.kube.get(path)), timeout=120, what="talker Ready")  # noqa: B023
        yield cluster, ns


def _logs(c: ClusterUnderTest, ns: str, *flags: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return c.kubectl("logs", "-n", ns, "talker", *flags, check=check)


def _status(c: ClusterUnderTest, ns: str) -> dict[str, Any]:
    status: dict[str, Any] = c.kube.get(f"/api/v1/namespaces/{ns}/pods/talker")["status"]["containerStatuses"][0]
    return status


def _ticks(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith("tick ")]


def test_logs_and_tail(talker: tuple[ClusterUnderTest, str]) -> None:
    c, ns = talker
    wait_for(lambda: len(_ticks(_logs(c, ns).stdout)) >= 3, timeout=60, what="three ticks in kubectl logs")
    out = _logs(c, ns).stdout.splitlines()
    assert out[0].startswith("started ")
    ticks = _ticks("\n".join(out))
    assert ticks == list(range(1, len(ticks) + 1)), "every line, in order"
    tail = _logs(c, ns, "--tail=2").stdout.splitlines()
    assert len(tail) == 2 and all(line.startswith("tick ") for line in tail), tail
    stamped = _logs(c, ns, "--tail=1", "--timestamps").stdout.split()
    assert stamped[0].endswith("Z") and stamped[1] == "tick", stamped


def test_previous_is_refused_before_any_crash(talker: tuple[ClusterUnderTest, str]) -> None:
    c, ns = talker
    assert _status(c, ns)["restartCount"] == 0  # this module's tests run in order: the crash comes next
    result = _logs(c, ns, "--previous", check=False)
    assert result.returncode != 0
    assert 'previous terminated container "main" in pod "talker" not found' in result.stderr


def test_follow_streams_new_lines_then_crash_and_previous(talker: tuple[ClusterUnderTest, str]) -> None:
    c, ns = talker
    first = _logs(c, ns).stdout.splitlines()[0]
    follower = subprocess.Popen([c.kubectl_path, f"--kubeconfig={c.kubeconfig}", "logs", "-f", "--tail=1", "-n", ns,
                                 "talker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(follower.stdout or []), daemon=True)
    reader.start()
    try:
        # -f prints lines written after it started: the tick count keeps growing in its output.
        start = wait_for(lambda: _ticks("".join(seen)), timeout=60, what="a first followed line")[0]
        wait_for(lambda: max(_ticks("".join(seen))) >= start + 5, timeout=60, what="five new lines through -f")
        followed = _ticks("".join(seen))
        assert followed == list(range(start, start + len(followed))), "followed lines are contiguous"

        # The crash: the container's process is killed; -f ends with it, as with a real kubelet.
        status = _status(c, ns)
        os.killpg(int(status["containerID"].removeprefix("process://")), signal.SIGKILL)
        follower.wait(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, follower.stderr.read() if follower.stderr else ""

    def restarted() -> bool:
        s = _status(c, ns)
        return bool(s["restartCount"] == 1 and "running" in s["state"])

    wait_for(restarted, timeout=90, what="the container restarted once")
    previous = _logs(c, ns, "--previous").stdout.splitlines()
    assert previous[0] == first, "--previous is the crashed run's log"
    assert max(_ticks("\n".join(previous))) >= start + 5
    wait_for(lambda: _logs(c, ns).stdout.startswith("started "), timeout=30, what="the new run's first line")
    current = _logs(c, ns).stdout.splitlines()
    assert current[0].startswith("started ") and current[0] != first, "the log is the new run's"
